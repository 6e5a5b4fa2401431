//! Symmetric RTP with latching, for one leg of a call.
//!
//! A leg's SDP signals where it receives RTP. Behind a NAT the packets it
//! sends come from another port (or another address) than the one signalled;
//! switchboard accepts packets whose source IP is the signalled one, latches
//! to the first such source address and port, and from then on sends there
//! and refuses every other source (RFC 7362 §4, restricted to the signalled
//! IP so that a stranger cannot hijack the stream by sending first).

use std::net::SocketAddr;

/// Where a leg's packets may come from and where its packets go.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Latch {
    /// From the leg's SDP.
    signalled: Option<SocketAddr>,
    /// The first accepted source: the only one accepted from then on.
    latched: Option<SocketAddr>,
}

impl Latch {
    /// Latching to nothing yet, for the address a leg's SDP signalled.
    pub fn new(signalled: Option<SocketAddr>) -> Latch {
        Latch {
            signalled,
            latched: None,
        }
    }

    /// Whether a datagram from `source` is the leg's; the first source on
    /// the signalled IP becomes the only one accepted.
    pub fn accepts(&mut self, source: SocketAddr) -> bool {
        match (self.latched, self.signalled) {
            (Some(latched), _) => latched == source,
            (None, Some(signalled)) if signalled.ip() == source.ip() => {
                self.latched = Some(source);
                true
            }
            _ => false,
        }
    }

    /// Where to send the leg's packets: the latched source, else the
    /// signalled address; nowhere while the leg holds (no address).
    pub fn destination(&self) -> Option<SocketAddr> {
        match self.signalled {
            Some(_) => self.latched.or(self.signalled),
            None => None,
        }
    }

    /// The leg's SDP changed (re-INVITE): latching starts over.
    pub fn resignal(&mut self, signalled: Option<SocketAddr>) {
        *self = Latch {
            signalled,
            latched: None,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    /// One `check(signalled, sources, expected)`: which sources a leg
    /// accepts, in order, and where it sends afterwards.
    #[test]
    fn latch_table() {
        fn check(signalled: Option<&str>, sources: &[(&str, bool)], destination: Option<&str>) {
            let mut latch = Latch::new(signalled.map(addr));
            for (source, accepted) in sources {
                assert_eq!(
                    latch.accepts(addr(source)),
                    *accepted,
                    "{signalled:?} from {source}"
                );
            }
            assert_eq!(latch.destination(), destination.map(addr));
        }
        let signalled = Some("10.0.0.1:4000");
        check(signalled, &[], Some("10.0.0.1:4000"));
        check(signalled, &[("10.0.0.1:4000", true)], Some("10.0.0.1:4000"));
        // A NAT changed the port: latch to it, then refuse the signalled one.
        check(
            signalled,
            &[
                ("10.0.0.1:5000", true),
                ("10.0.0.1:4000", false),
                ("10.0.0.1:5000", true),
            ],
            Some("10.0.0.1:5000"),
        );
        check(
            signalled,
            &[("10.0.0.2:4000", false), ("10.0.0.1:4002", true)],
            Some("10.0.0.1:4002"),
        );
        // Held with 0.0.0.0: nothing accepted, nothing sent.
        check(None, &[("10.0.0.1:4000", false)], None);
    }

    #[test]
    fn resignalling_starts_latching_over() {
        let mut latch = Latch::new(Some(addr("10.0.0.1:4000")));
        assert!(latch.accepts(addr("10.0.0.1:5000")));
        latch.resignal(Some(addr("10.0.0.9:4000")));
        assert!(!latch.accepts(addr("10.0.0.1:5000")));
        assert_eq!(latch.destination(), Some(addr("10.0.0.9:4000")));
        latch.resignal(None);
        assert_eq!(latch.destination(), None);
    }
}
