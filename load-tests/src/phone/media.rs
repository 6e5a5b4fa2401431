//! RTP for the relay scenario: G.711 packets (20 ms, 160 bytes) whose
//! payload carries the call, the direction, a sequence and the send time,
//! so the far side measures one-way latency (one process, one clock), loss
//! and jitter per direction; packets without that mark (hold audio) are
//! only counted.
//!
//! Legs share sockets: call `i` uses caller socket `i % n` and agent
//! socket `i % n`, so 1,000 calls need 2n sockets, not 2,000 (the
//! process may hold 20,000 open files, and fewer sockets mean fewer
//! wake-ups). The server keeps the legs apart by its own ports, and the
//! mark in the payload says which call a packet belongs to.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::net::UdpSocket;
use tokio::sync::watch;

use crate::stats::new_histogram;

/// The mark at the start of a generated payload.
const MAGIC: [u8; 4] = *b"SBLG";
/// G.711 at 8 kHz, 20 ms.
pub const PAYLOAD_BYTES: usize = 160;
const RTP_HEADER_BYTES: usize = 12;
/// A packet every 20 ms.
pub const PACKET_INTERVAL: Duration = Duration::from_millis(20);

/// Which way a packet goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    CallerToAgent = 0,
    AgentToCaller = 1,
}

/// Nanoseconds on the process's monotonic clock.
pub fn clock_ns() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// An RTP packet (PT 0) of call `call`, direction, sequence `seq`, sent now.
pub fn packet(call: u32, direction: Direction, seq: u32, out: &mut [u8; 172]) {
    out[0] = 0x80; // version 2
    out[1] = 0; // PCMU
    out[2..4].copy_from_slice(&(seq as u16).to_be_bytes());
    out[4..8].copy_from_slice(&(seq.wrapping_mul(160)).to_be_bytes());
    let ssrc = call.wrapping_mul(2) + direction as u32 + 1;
    out[8..12].copy_from_slice(&ssrc.to_be_bytes());
    let payload = &mut out[RTP_HEADER_BYTES..];
    payload.fill(0xFF); // PCMU silence
    payload[0..4].copy_from_slice(&MAGIC);
    payload[4..8].copy_from_slice(&call.to_be_bytes());
    payload[8] = direction as u8;
    payload[9..13].copy_from_slice(&seq.to_be_bytes());
    payload[13..21].copy_from_slice(&clock_ns().to_be_bytes());
}

/// What a generated packet says: (call, direction, seq, sent ns).
pub fn read_packet(datagram: &[u8]) -> Option<(u32, Direction, u32, u64)> {
    let payload = datagram.get(RTP_HEADER_BYTES..)?;
    if payload.len() < 21 || payload[0..4] != MAGIC {
        return None;
    }
    let call = u32::from_be_bytes(payload[4..8].try_into().ok()?);
    let direction = match payload[8] {
        0 => Direction::CallerToAgent,
        1 => Direction::AgentToCaller,
        _ => return None,
    };
    let seq = u32::from_be_bytes(payload[9..13].try_into().ok()?);
    let sent = u64::from_be_bytes(payload[13..21].try_into().ok()?);
    Some((call, direction, seq, sent))
}

/// One direction of one call, as its receiver saw it.
#[derive(Debug, Default, Clone)]
pub struct Stream {
    /// Distinct sequences received.
    pub received: u64,
    pub duplicates: u64,
    /// Arrived after a higher sequence.
    pub reordered: u64,
    highest: Option<u32>,
    /// Which sequences came (for duplicates).
    seen: Vec<u64>,
    /// RFC 3550 §6.4.1 interarrival jitter, in nanoseconds (a float, as the
    /// estimator's 1/16 steps need).
    pub jitter_ns: f64,
    /// The last packet's transit time (arrival − send), for the jitter.
    last_transit: Option<i64>,
}

impl Stream {
    fn record(&mut self, seq: u32, sent_ns: u64, arrived_ns: u64) {
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if self.seen.len() <= word {
            self.seen.resize(word + 1, 0);
        }
        if self.seen[word] & (1 << bit) != 0 {
            self.duplicates += 1;
            return;
        }
        self.seen[word] |= 1 << bit;
        self.received += 1;
        match self.highest {
            Some(highest) if seq < highest => self.reordered += 1,
            _ => self.highest = Some(seq),
        }
        let transit = arrived_ns as i64 - sent_ns as i64;
        if let Some(last) = self.last_transit {
            let d = (transit - last).abs() as f64;
            self.jitter_ns += (d - self.jitter_ns) / 16.0;
        }
        self.last_transit = Some(transit);
    }
}

/// What one receiving socket measured.
pub struct Received {
    /// One-way latency (µs) per direction.
    pub latency: HashMap<Direction, Histogram<u64>>,
    pub streams: HashMap<(u32, Direction), Stream>,
    /// Datagrams without the generator's mark (hold audio).
    pub unmarked: u64,
}

/// Receive and send buffers of an RTP socket: 4 MiB (the usual
/// `net.core.rmem_max`) hold about a second of every leg the socket
/// carries, so a generator thread that stalls a moment loses nothing.
const SOCKET_BUFFER_BYTES: usize = 4 << 20;

/// A UDP socket on 127.0.0.1 with [`SOCKET_BUFFER_BYTES`] buffers (the
/// kernel caps them at its maxima).
pub fn bind_rtp() -> std::io::Result<UdpSocket> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
    socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES)?;
    socket.set_send_buffer_size(SOCKET_BUFFER_BYTES)?;
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    UdpSocket::from_std(socket.into())
}

/// Reads `socket` until `stop`, then drains what is still queued. Each
/// wake-up reads everything queued, so a busy socket costs one wake-up per
/// batch rather than one per packet.
pub async fn receive(socket: Arc<UdpSocket>, mut stop: watch::Receiver<bool>) -> Received {
    let mut received = Received {
        latency: HashMap::new(),
        streams: HashMap::new(),
        unmarked: 0,
    };
    let mut buf = [0u8; 2048];
    loop {
        tokio::select! {
            biased;
            ready = socket.readable() => {
                if ready.is_err() {
                    break;
                }
                while let Ok((len, _)) = socket.try_recv_from(&mut buf) {
                    record(&mut received, &buf[..len]);
                }
            }
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    break;
                }
            }
        }
    }
    while let Ok((len, _)) = socket.try_recv_from(&mut buf) {
        record(&mut received, &buf[..len]);
    }
    received
}

fn record(received: &mut Received, datagram: &[u8]) {
    let arrived = clock_ns();
    let Some((call, direction, seq, sent)) = read_packet(datagram) else {
        received.unmarked += 1;
        return;
    };
    received
        .latency
        .entry(direction)
        .or_insert_with(new_histogram)
        .saturating_record((arrived.saturating_sub(sent) / 1_000).max(1));
    received
        .streams
        .entry((call, direction))
        .or_default()
        .record(seq, sent, arrived);
}

/// Sends `n_packets` per destination, one every 20 ms, from `socket` to
/// each `(call, destination)`, starting at `start`; returns how many it sent
/// and how many sends failed.
pub async fn send(
    socket: Arc<UdpSocket>,
    direction: Direction,
    destinations: Vec<(u32, SocketAddr)>,
    n_packets: u32,
    start: tokio::time::Instant,
) -> (u64, u64) {
    let mut tick = tokio::time::interval_at(start, PACKET_INTERVAL);
    // A late tick pushes the next ones back rather than bursting to catch
    // up: a phone never sends faster than 50 packets/s, and a burst would
    // only measure socket buffers. A generator that falls behind makes the
    // media phase longer (the report gives the achieved rate).
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut buf = [0u8; RTP_HEADER_BYTES + PAYLOAD_BYTES];
    let (mut sent, mut failed) = (0, 0);
    for seq in 0..n_packets {
        tick.tick().await;
        for &(call, destination) in &destinations {
            packet(call, direction, seq, &mut buf);
            let result = match socket.try_send_to(&buf, destination) {
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                    socket.send_to(&buf, destination).await
                }
                other => other,
            };
            match result {
                Ok(_) => sent += 1,
                Err(_) => failed += 1,
            }
        }
    }
    (sent, failed)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn any_datagram_reads_or_is_unmarked(datagram in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = read_packet(&datagram);
        }
    }

    #[test]
    fn packets_carry_their_call_and_time() {
        let mut buf = [0u8; 172];
        let before = clock_ns();
        packet(41, Direction::AgentToCaller, 7, &mut buf);
        let (call, direction, seq, sent) = read_packet(&buf).unwrap();
        assert_eq!((call, direction, seq), (41, Direction::AgentToCaller, 7));
        assert!(sent >= before);
        assert_eq!(buf[0] >> 6, 2, "RTP version 2");
        assert!(
            read_packet(&[0x80; 172]).is_none(),
            "hold audio is unmarked"
        );
    }

    #[test]
    fn streams_count_duplicates_reordering_and_jitter() {
        let mut stream = Stream::default();
        // Sent every 20 ms; arrivals 1 ms late, except seq 2 at 5 ms late.
        for (seq, late_ms) in [(0u32, 1u64), (1, 1), (3, 1), (2, 5), (2, 5)] {
            let sent = u64::from(seq) * 20_000_000;
            stream.record(seq, sent, sent + late_ms * 1_000_000);
        }
        assert_eq!(stream.received, 4);
        assert_eq!(stream.duplicates, 1);
        assert_eq!(stream.reordered, 1);
        // One step of 4 ms: J = 4/16 ms = 0.25 ms.
        assert!(
            (stream.jitter_ns - 250_000.0).abs() < 1.0,
            "{}",
            stream.jitter_ns
        );
    }
}
