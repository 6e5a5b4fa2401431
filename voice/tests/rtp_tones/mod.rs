//! Parties of a supervised call that each speak a tone of their own and
//! tell, from what they receive, whom they hear.
//!
//! Each party sends PCMU at one constant level — the caller 1000, the
//! agent 2000, the supervisor 4000 — so a received frame's level, divided
//! by 1000, is the set of parties in it as bits (caller 1, agent 2,
//! supervisor 4): a relayed packet carries one party's level exactly, a
//! mixed one the sum of the levels heard. µ-law's step at these levels is
//! at most 256, far from the 500 that would confuse two sets.

#![allow(dead_code)] // each test binary uses part of it

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use voice::media::g711;
use voice::media::rtp::{HEADER_LEN, RtpHeader, RtpPacket};

/// The caller's bit (and level in thousands).
pub const CALLER: u8 = 1;
/// The agent's.
pub const AGENT: u8 = 2;
/// The supervisor's.
pub const SUPERVISOR: u8 = 4;

/// One party's RTP: the socket its SDP signalled, sending its tone.
pub struct Speaker {
    pub socket: Arc<UdpSocket>,
    /// PCMU's number in this call's SDP (0, or a dynamic one).
    payload_type: u8,
    sending: Option<JoinHandle<()>>,
}

impl Speaker {
    /// A party on `socket` (bound on loopback by the test).
    pub fn new(socket: UdpSocket) -> Speaker {
        Speaker::with_payload_type(socket, 0)
    }

    /// A party whose SDP mapped PCMU to `payload_type`.
    pub fn with_payload_type(socket: UdpSocket, payload_type: u8) -> Speaker {
        Speaker {
            socket: Arc::new(socket),
            payload_type,
            sending: None,
        }
    }

    /// Starts sending `party`'s tone to `to` every 20 ms (for at most a
    /// minute), from the signalled socket (symmetric RTP).
    pub fn speak(&mut self, party: u8, to: SocketAddr) {
        self.stop();
        let socket = Arc::clone(&self.socket);
        let mut payload = [0u8; 160];
        g711::ulaw_encode_all(&[i16::from(party) * 1000; 160], &mut payload);
        let ssrc = 0x5000_0000 | u32::from(party);
        let payload_type = self.payload_type;
        self.sending = Some(tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(20));
            for n in 0..3_000u16 {
                every.tick().await;
                let mut packet = [0u8; HEADER_LEN + 160];
                RtpHeader {
                    marker: n == 0,
                    payload_type,
                    sequence: n,
                    timestamp: u32::from(n) * 160,
                    ssrc,
                }
                .write(&mut packet);
                packet[HEADER_LEN..].copy_from_slice(&payload);
                if socket.send_to(&packet, to).await.is_err() {
                    return;
                }
            }
        }));
    }

    /// Stops sending.
    pub fn stop(&mut self) {
        if let Some(sending) = self.sending.take() {
            sending.abort();
        }
    }

    /// What arrives in the `window` after `settle` (packets of the moment
    /// before, still in flight or queued, are read and left out).
    pub async fn listen(&self, settle: Duration, window: Duration) -> Heard {
        let mut heard = Heard::default();
        let mut buffer = [0u8; 2048];
        let start = tokio::time::Instant::now();
        let (from, until) = (start + settle, start + settle + window);
        while let Ok(Ok((len, source))) =
            tokio::time::timeout_at(until, self.socket.recv_from(&mut buffer)).await
        {
            if tokio::time::Instant::now() < from {
                continue;
            }
            let Ok(packet) = RtpPacket::parse(&buffer[..len]) else {
                heard.not_rtp += 1;
                continue;
            };
            if packet.header.payload_type != self.payload_type || packet.payload.is_empty() {
                heard.other_payload_types += 1;
                continue;
            }
            let level = g711::ulaw_decode(packet.payload[0]);
            let parties = ((i32::from(level) + 500) / 1000).clamp(0, 7) as usize;
            heard.by_parties[parties] += 1;
            heard.sources.insert(source);
            heard.ssrcs.insert(packet.header.ssrc);
        }
        heard
    }
}

impl Drop for Speaker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What one party received in a window.
#[derive(Debug, Default)]
pub struct Heard {
    /// Packets by the set of parties heard in them (bits).
    pub by_parties: [u32; 8],
    /// Where they came from.
    pub sources: std::collections::BTreeSet<SocketAddr>,
    /// Their SSRCs: a relayed party's own, or the mix's.
    pub ssrcs: std::collections::BTreeSet<u32>,
    /// Datagrams that were not RTP.
    pub not_rtp: u32,
    /// RTP packets of another payload type than the call's PCMU.
    pub other_payload_types: u32,
}

impl Heard {
    /// Audio packets received.
    pub fn n_packets(&self) -> u32 {
        self.by_parties.iter().sum()
    }

    /// Every party heard in any packet (bits).
    pub fn anyone(&self) -> u8 {
        (0u8..8)
            .filter(|parties| self.by_parties[usize::from(*parties)] > 0)
            .fold(0, |all, parties| all | parties)
    }

    /// The set of parties heard in most packets.
    pub fn mostly(&self) -> u8 {
        (0u8..8)
            .max_by_key(|parties| self.by_parties[usize::from(*parties)])
            .unwrap_or(0)
    }

    /// Asserts that this party (`who`) heard exactly `parties`: in most of
    /// at least `min_packets` packets all of them together, and nobody
    /// else in any packet (a mixed frame may lack a party whose packet
    /// came a moment late, never hold one it must not).
    pub fn assert_hears(&self, who: &str, parties: u8, min_packets: u32) {
        assert!(
            self.n_packets() >= min_packets,
            "{who}: {} packets, expected at least {min_packets}: {self:?}",
            self.n_packets()
        );
        assert_eq!(
            self.anyone() & !parties,
            0,
            "{who} heard {} and must hear only {}: {self:?}",
            names(self.anyone()),
            names(parties)
        );
        assert_eq!(
            self.mostly(),
            parties,
            "{who} mostly heard {}, expected {}: {self:?}",
            names(self.mostly()),
            names(parties)
        );
    }

    /// Asserts that this party heard nobody at all.
    pub fn assert_hears_nobody(&self, who: &str) {
        assert_eq!(self.anyone(), 0, "{who} must hear nobody: {self:?}");
    }
}

/// `parties` in words, for failure messages.
pub fn names(parties: u8) -> String {
    let named: Vec<&str> = [
        (CALLER, "caller"),
        (AGENT, "agent"),
        (SUPERVISOR, "supervisor"),
    ]
    .into_iter()
    .filter(|(bit, _)| parties & bit != 0)
    .map(|(_, name)| name)
    .collect();
    match named.is_empty() {
        true => "nobody".into(),
        false => named.join(" + "),
    }
}
