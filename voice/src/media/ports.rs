//! RTP ports: a pool over the configured range, one UDP socket per lease.
//!
//! RTP uses even ports (RFC 3550 §11; the odd one above is RTCP's, which
//! switchboard does not use). A port goes back to the pool when its socket
//! is dropped, at the back of the queue, so a port is not reused right
//! away and a late packet of an ended call does not reach the next one.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex};

use thiserror::Error;
use tokio::net::UdpSocket;

/// Why no RTP socket could be had.
#[derive(Debug, Error)]
pub enum PortError {
    /// The configured range holds no even port.
    #[error("rtp port range {first}-{last} holds no even port")]
    EmptyRange {
        /// First port of the range.
        first: u16,
        /// Last port of the range.
        last: u16,
    },
    /// Every port is leased, or bound by another process.
    #[error("no free rtp port on {ip} in {first}-{last} ({n_ports} even ports, all in use)")]
    Exhausted {
        /// The configured IP.
        ip: IpAddr,
        /// First port of the range.
        first: u16,
        /// Last port of the range.
        last: u16,
        /// Even ports in the range.
        n_ports: usize,
    },
    /// Binding failed for a reason other than the port being in use.
    #[error("cannot bind an rtp socket on {address}")]
    Bind {
        /// Where the bind was tried.
        address: SocketAddr,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
}

/// Hands out UDP sockets on even ports of a range on one IP.
#[derive(Debug, Clone)]
pub struct PortAllocator {
    ip: IpAddr,
    range: RangeInclusive<u16>,
    /// Free even ports, least recently released first; shared with the
    /// leases, which put their port back when dropped.
    free: Arc<Mutex<VecDeque<u16>>>,
    n_ports: usize,
}

impl PortAllocator {
    /// A pool of the even ports in `range`, bound on `ip`.
    pub fn new(ip: IpAddr, range: RangeInclusive<u16>) -> Result<PortAllocator, PortError> {
        let free: VecDeque<u16> = range.clone().filter(|port| port % 2 == 0).collect();
        if free.is_empty() {
            return Err(PortError::EmptyRange {
                first: *range.start(),
                last: *range.end(),
            });
        }
        Ok(PortAllocator {
            ip,
            n_ports: free.len(),
            range,
            free: Arc::new(Mutex::new(free)),
        })
    }

    /// Ports neither leased nor known to be taken by someone else.
    pub fn n_free(&self) -> usize {
        self.free.lock().expect("port pool lock").len()
    }

    /// Binds a socket on the next free even port. A port another process
    /// holds is skipped (and tried again later); when every port has been
    /// tried, the range is exhausted.
    pub fn allocate(&self) -> Result<RtpSocket, PortError> {
        for _ in 0..self.n_ports {
            let Some(port) = self.free.lock().expect("port pool lock").pop_front() else {
                break;
            };
            let address = SocketAddr::new(self.ip, port);
            match bind(address) {
                Ok(socket) => {
                    return Ok(RtpSocket {
                        socket,
                        local_addr: address,
                        _lease: Some(PortLease {
                            port,
                            free: Arc::clone(&self.free),
                        }),
                    });
                }
                Err(err) if err.kind() == io::ErrorKind::AddrInUse => {
                    self.free.lock().expect("port pool lock").push_back(port);
                }
                Err(source) => {
                    self.free.lock().expect("port pool lock").push_back(port);
                    return Err(PortError::Bind { address, source });
                }
            }
        }
        Err(PortError::Exhausted {
            ip: self.ip,
            first: *self.range.start(),
            last: *self.range.end(),
            n_ports: self.n_ports,
        })
    }
}

/// A port taken from a [`PortAllocator`], returned when dropped.
#[derive(Debug)]
struct PortLease {
    port: u16,
    free: Arc<Mutex<VecDeque<u16>>>,
}

impl Drop for PortLease {
    fn drop(&mut self) {
        // A poisoned lock means a thread panicked while holding it; the
        // pool is a plain queue and still consistent, so keep using it.
        let mut free = self
            .free
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        free.push_back(self.port);
    }
}

/// A bound RTP socket; dropping it frees its port.
#[derive(Debug)]
pub struct RtpSocket {
    socket: UdpSocket,
    local_addr: SocketAddr,
    /// Declared after the socket so the socket closes before the port goes
    /// back to the pool.
    _lease: Option<PortLease>,
}

impl RtpSocket {
    /// A socket outside any pool (tests, benchmarks, an ephemeral port 0).
    pub fn bind(address: SocketAddr) -> Result<RtpSocket, PortError> {
        let socket = bind(address).map_err(|source| PortError::Bind { address, source })?;
        let local_addr = socket
            .local_addr()
            .map_err(|source| PortError::Bind { address, source })?;
        Ok(RtpSocket {
            socket,
            local_addr,
            _lease: None,
        })
    }

    /// The bound address: the port to advertise in SDP.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The socket, to send and receive.
    pub fn socket(&self) -> &UdpSocket {
        &self.socket
    }
}

/// Binds a non-blocking UDP socket registered with the current tokio
/// runtime (so allocation itself needs no `.await`).
fn bind(address: SocketAddr) -> io::Result<UdpSocket> {
    let socket = std::net::UdpSocket::bind(address)?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allocator(ip: [u8; 4], range: RangeInclusive<u16>) -> PortAllocator {
        PortAllocator::new(IpAddr::from(ip), range).unwrap()
    }

    #[tokio::test]
    async fn hands_out_even_ports_until_exhausted_then_reuses_released_ones() {
        // 127.0.21.1 is this test's own address: nothing else binds there.
        let ports = allocator([127, 0, 21, 1], 40001..=40006);
        assert_eq!(ports.n_free(), 3);
        let first = ports.allocate().unwrap();
        let second = ports.allocate().unwrap();
        let third = ports.allocate().unwrap();
        let bound: Vec<u16> = [&first, &second, &third]
            .iter()
            .map(|socket| socket.local_addr().port())
            .collect();
        assert_eq!(bound, [40002, 40004, 40006]);
        assert_eq!(first.local_addr().ip(), IpAddr::from([127, 0, 21, 1]));
        let err = ports.allocate().unwrap_err();
        assert!(
            matches!(err, PortError::Exhausted { n_ports: 3, .. }),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "no free rtp port on 127.0.21.1 in 40001-40006 (3 even ports, all in use)"
        );
        drop(second);
        assert_eq!(ports.n_free(), 1);
        let again = ports.allocate().unwrap();
        assert_eq!(again.local_addr().port(), 40004);
        // The socket works.
        let peer = tokio::net::UdpSocket::bind("127.0.21.2:0").await.unwrap();
        peer.send_to(b"hi", again.local_addr()).await.unwrap();
        let mut buf = [0u8; 8];
        let (n, from) = again.socket().recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&b"hi"[..], peer.local_addr().unwrap()));
    }

    #[tokio::test]
    async fn ports_bound_elsewhere_are_skipped() {
        let squatter = std::net::UdpSocket::bind("127.0.21.3:40010").unwrap();
        let ports = allocator([127, 0, 21, 3], 40010..=40012);
        assert_eq!(ports.allocate().unwrap().local_addr().port(), 40012);
        drop(squatter);
    }

    #[test]
    fn a_range_without_even_ports_is_refused() {
        let err = PortAllocator::new(IpAddr::from([127, 0, 0, 1]), 40001..=40001).unwrap_err();
        assert_eq!(
            err.to_string(),
            "rtp port range 40001-40001 holds no even port"
        );
    }

    #[tokio::test]
    async fn a_foreign_address_is_a_bind_error() {
        // TEST-NET-3 is not an address of this host.
        let ports = allocator([203, 0, 113, 1], 40020..=40021);
        let err = ports.allocate().unwrap_err();
        assert!(matches!(err, PortError::Bind { .. }), "{err:?}");
        assert_eq!(ports.n_free(), 1);
    }
}
