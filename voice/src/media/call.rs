//! One call's media: a tokio task that owns the caller-facing socket (and,
//! once an agent answers, the agent-facing one) and either plays hold audio
//! to the caller or relays RTP between the two, switched by commands.
//!
//! Symmetric RTP: each socket sends from the port advertised in its SDP.
//! Latching: a leg accepts packets whose source IP is the one its SDP
//! signalled, latches to the first such source address and port (a NAT may
//! change the port), and from then on sends there and drops, and counts,
//! packets from anywhere else.
//!
//! The task allocates nothing per packet: one receive buffer per leg and one
//! packet buffer for hold audio, reused.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use thiserror::Error;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::hold::{self, FRAME_SAMPLES, Frame};
use super::metrics::{CallMetrics, InboundMetrics};
use super::ports::RtpSocket;
use super::rtp::{Dtmf, DtmfDetector, HEADER_LEN, RtpHeader, RtpPacket, TelephoneEvent};
use super::sdp::{Codec, MediaFormat};
use super::stats::{CallStats, CallStatsSnapshot, InboundStats, JitterEstimator};

/// One packet of hold audio every 20 ms.
const PACKET_INTERVAL: Duration = Duration::from_millis(20);

/// How far hold audio may fall behind its schedule (a stalled runtime)
/// before it stops catching up in a burst and starts a new talkspurt.
const MAX_CATCH_UP: Duration = Duration::from_millis(200);

/// Receive buffer per leg: larger than any RTP packet a phone sends.
const RECV_BUFFER: usize = 2048;

/// How often an inbound stream's jitter goes to the metrics histogram.
const JITTER_SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// What the caller hears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The hold clip, in a loop; the caller's packets are read (for DTMF
    /// and jitter) and not forwarded.
    Hold,
    /// RTP relayed both ways between the caller and the agent's phone.
    Bridge,
    /// Nothing is sent; inbound packets are read and dropped.
    Stopped,
}

impl Mode {
    pub(crate) fn code(self) -> u8 {
        match self {
            Mode::Hold => 0,
            Mode::Bridge => 1,
            Mode::Stopped => 2,
        }
    }

    pub(crate) fn from_code(code: u8) -> Mode {
        match code {
            0 => Mode::Hold,
            1 => Mode::Bridge,
            _ => Mode::Stopped,
        }
    }
}

/// How a call's media starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallMediaConfig {
    /// The negotiated codec (hold audio is encoded in it) and the caller's
    /// telephone-event payload type (its packets are read as DTMF).
    pub format: MediaFormat,
    /// Where the caller's SDP says to send RTP; `None` while it holds
    /// (c=0.0.0.0) or before it is known.
    pub caller: Option<SocketAddr>,
    /// Hold to play the clip at once (queued callers), Stopped to stay silent.
    pub mode: Mode,
}

/// The agent-facing side of a bridge: the socket whose port was offered to
/// the agent's phone, and where the phone's answer says to send.
#[derive(Debug)]
pub struct AgentLeg {
    /// Bound before the offer to the agent, so its port is in the SDP.
    pub socket: RtpSocket,
    /// From the agent's answer; `None` when it holds.
    pub remote: Option<SocketAddr>,
}

/// The call's media task has ended (after [`CallMedia::end`], or a panic).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("the call's media task has ended")]
pub struct CallMediaEnded;

/// A command to the task; each method of [`CallMedia`] sends one.
#[derive(Debug)]
enum Command {
    Hold,
    Bridge(AgentLeg),
    Resume,
    ReleaseAgent,
    Stop,
    UpdateCaller(Option<SocketAddr>),
    UpdateAgent(Option<SocketAddr>),
}

/// The handle to one call's media task. Dropping it ends the task and
/// frees its ports; [`CallMedia::end`] does the same and waits for it.
#[derive(Debug)]
pub struct CallMedia {
    commands: mpsc::UnboundedSender<Command>,
    stats: Arc<CallStats>,
    local_addr: SocketAddr,
    task: JoinHandle<()>,
}

impl CallMedia {
    /// Starts the task on the current tokio runtime. `dtmf` receives the
    /// caller's RFC 4733 digits as they complete.
    pub fn start(
        caller_socket: RtpSocket,
        config: CallMediaConfig,
        dtmf: Option<mpsc::UnboundedSender<Dtmf>>,
    ) -> CallMedia {
        let (commands, command_rx) = mpsc::unbounded_channel();
        let stats = Arc::new(CallStats::default());
        let local_addr = caller_socket.local_addr();
        let now = Instant::now();
        let task = CallTask {
            caller: Leg::new(caller_socket, config.caller),
            agent: None,
            mode: Mode::Stopped,
            player: HoldPlayer::new(config.format, now),
            telephone_event: config.format.telephone_event,
            dtmf_detector: DtmfDetector::new(),
            dtmf,
            commands: command_rx,
            stats: Arc::clone(&stats),
            metrics: CallMetrics::start(),
            epoch: now,
        };
        let task = tokio::spawn(task.run(config.mode));
        CallMedia {
            commands,
            stats,
            local_addr,
            task,
        }
    }

    /// The caller-facing socket's address (its port goes in the answer).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Plays hold audio to the caller (queued, held, transferred). An
    /// attached agent leg stays attached; its packets are read and dropped.
    pub fn hold(&self) -> Result<(), CallMediaEnded> {
        self.send(Command::Hold)
    }

    /// Attaches the agent's leg (replacing any previous one) and relays.
    pub fn bridge(&self, agent: AgentLeg) -> Result<(), CallMediaEnded> {
        self.send(Command::Bridge(agent))
    }

    /// Relays again with the attached agent leg, after a hold. Without an
    /// agent leg the call stays as it is (and a warning is logged).
    pub fn resume(&self) -> Result<(), CallMediaEnded> {
        self.send(Command::Resume)
    }

    /// Drops the agent leg (freeing its port) and plays hold audio: the
    /// agent hung up or the call is transferred back to the queue.
    pub fn release_agent(&self) -> Result<(), CallMediaEnded> {
        self.send(Command::ReleaseAgent)
    }

    /// Sends nothing until the next mode change.
    pub fn stop(&self) -> Result<(), CallMediaEnded> {
        self.send(Command::Stop)
    }

    /// The caller's re-INVITE moved its media (or held with 0.0.0.0):
    /// latching starts over.
    pub fn update_caller(&self, remote: Option<SocketAddr>) -> Result<(), CallMediaEnded> {
        self.send(Command::UpdateCaller(remote))
    }

    /// The agent's phone moved its media: latching starts over.
    pub fn update_agent(&self, remote: Option<SocketAddr>) -> Result<(), CallMediaEnded> {
        self.send(Command::UpdateAgent(remote))
    }

    /// The statistics so far; the mode is the one the task has applied.
    pub fn stats(&self) -> CallStatsSnapshot {
        self.stats.snapshot()
    }

    /// Ends the task, frees its ports and returns the final statistics.
    pub async fn end(self) -> CallStatsSnapshot {
        let CallMedia {
            commands,
            stats,
            task,
            ..
        } = self;
        drop(commands);
        if let Err(err) = task.await {
            warn!(error = %err, "call media task failed");
        }
        stats.snapshot()
    }

    fn send(&self, command: Command) -> Result<(), CallMediaEnded> {
        self.commands.send(command).map_err(|_| CallMediaEnded)
    }
}

/// Where a leg's packets may come from and where its packets go.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Latch {
    /// From the leg's SDP.
    signalled: Option<SocketAddr>,
    /// The first accepted source: the only one accepted from then on.
    latched: Option<SocketAddr>,
}

impl Latch {
    fn accepts(&mut self, source: SocketAddr) -> bool {
        match (self.latched, self.signalled) {
            (Some(latched), _) => latched == source,
            (None, Some(signalled)) if signalled.ip() == source.ip() => {
                self.latched = Some(source);
                true
            }
            _ => false,
        }
    }

    fn destination(&self) -> Option<SocketAddr> {
        match self.signalled {
            Some(_) => self.latched.or(self.signalled),
            None => None,
        }
    }

    fn resignal(&mut self, signalled: Option<SocketAddr>) {
        *self = Latch {
            signalled,
            latched: None,
        };
    }
}

/// One side of the call: its socket, latch, receive buffer and jitter.
struct Leg {
    socket: RtpSocket,
    latch: Latch,
    buffer: Box<[u8; RECV_BUFFER]>,
    jitter: JitterEstimator,
    jitter_sampled_at: Option<Instant>,
}

impl Leg {
    fn new(socket: RtpSocket, signalled: Option<SocketAddr>) -> Leg {
        Leg {
            socket,
            latch: Latch {
                signalled,
                latched: None,
            },
            buffer: Box::new([0u8; RECV_BUFFER]),
            jitter: JitterEstimator::default(),
            jitter_sampled_at: None,
        }
    }
}

/// Generates the hold stream: one SSRC for the whole call, sequence +1
/// and timestamp +160 per packet, paced on an absolute 20 ms schedule.
struct HoldPlayer {
    frames: &'static [Frame],
    position: usize,
    payload_type: u8,
    ssrc: u32,
    /// Of the next packet.
    sequence: u16,
    /// Of the next packet.
    timestamp: u32,
    /// The next packet starts a talkspurt: marker bit, and a timestamp that
    /// accounts for the time since the last packet.
    talkspurt: bool,
    last_sent_at: Option<Instant>,
    next_send_at: Instant,
    packet: [u8; HEADER_LEN + FRAME_SAMPLES],
}

impl HoldPlayer {
    fn new(format: MediaFormat, now: Instant) -> HoldPlayer {
        HoldPlayer {
            frames: hold::frames(format.codec),
            position: 0,
            payload_type: format.payload_type,
            ssrc: super::random_u32(),
            sequence: super::random_u32() as u16,
            timestamp: super::random_u32(),
            talkspurt: true,
            last_sent_at: None,
            next_send_at: now,
            packet: [0u8; HEADER_LEN + FRAME_SAMPLES],
        }
    }

    /// (Re)starts playing now, as a new talkspurt.
    fn restart(&mut self, now: Instant) {
        self.talkspurt = true;
        self.next_send_at = now;
    }

    /// Builds the next packet and schedules the one after.
    fn next_packet(&mut self, now: Instant) -> &[u8] {
        if self.talkspurt
            && let Some(last_sent_at) = self.last_sent_at
        {
            // The timestamp already moved one packet on; add the packets
            // that were not sent during the gap.
            let gap = now.saturating_duration_since(last_sent_at);
            let periods = (gap.as_micros() / PACKET_INTERVAL.as_micros()).max(1) as u32;
            self.timestamp = self
                .timestamp
                .wrapping_add((periods - 1).wrapping_mul(FRAME_SAMPLES as u32));
        }
        let header = RtpHeader {
            marker: self.talkspurt,
            payload_type: self.payload_type,
            sequence: self.sequence,
            timestamp: self.timestamp,
            ssrc: self.ssrc,
        };
        header.write(&mut self.packet);
        self.packet[HEADER_LEN..].copy_from_slice(&self.frames[self.position]);
        self.position = (self.position + 1) % self.frames.len();
        self.sequence = self.sequence.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(FRAME_SAMPLES as u32);
        self.talkspurt = false;
        self.last_sent_at = Some(now);
        self.next_send_at += PACKET_INTERVAL;
        if now.saturating_duration_since(self.next_send_at) > MAX_CATCH_UP {
            // Too far behind to catch up: skip the missed packets and let
            // the next one start a talkspurt whose timestamp covers the gap.
            self.talkspurt = true;
            self.next_send_at = now + PACKET_INTERVAL;
        }
        &self.packet
    }
}

/// What woke the task.
enum Wake {
    Command(Option<Command>),
    HoldDue,
    FromCaller(std::io::Result<(usize, SocketAddr)>),
    FromAgent(std::io::Result<(usize, SocketAddr)>),
}

/// The task's state; see the module doc.
struct CallTask {
    caller: Leg,
    agent: Option<Leg>,
    mode: Mode,
    player: HoldPlayer,
    telephone_event: Option<u8>,
    dtmf_detector: DtmfDetector,
    dtmf: Option<mpsc::UnboundedSender<Dtmf>>,
    commands: mpsc::UnboundedReceiver<Command>,
    stats: Arc<CallStats>,
    metrics: CallMetrics,
    /// Arrival times for jitter are measured from here.
    epoch: Instant,
}

impl CallTask {
    async fn run(mut self, mode: Mode) {
        self.set_mode(mode);
        let pacer = tokio::time::sleep_until(self.player.next_send_at);
        tokio::pin!(pacer);
        loop {
            let playing = self.mode == Mode::Hold && self.caller.latch.destination().is_some();
            if playing && pacer.deadline() != self.player.next_send_at {
                pacer.as_mut().reset(self.player.next_send_at);
            }
            let wake = tokio::select! {
                biased;
                command = self.commands.recv() => Wake::Command(command),
                () = &mut pacer, if playing => Wake::HoldDue,
                received = self.caller.socket.socket().recv_from(&mut self.caller.buffer[..]) => {
                    Wake::FromCaller(received)
                }
                received = recv_agent(self.agent.as_mut()) => Wake::FromAgent(received),
            };
            match wake {
                Wake::Command(None) => break,
                Wake::Command(Some(command)) => self.command(command),
                Wake::HoldDue => self.send_hold_packet(),
                Wake::FromCaller(Ok((len, source))) => self.on_caller_packet(len, source),
                Wake::FromAgent(Ok((len, source))) => self.on_agent_packet(len, source),
                Wake::FromCaller(Err(err)) | Wake::FromAgent(Err(err)) => {
                    // Unconnected UDP sockets report little (an ICMP error
                    // on some systems); the next datagram is unaffected.
                    debug!(error = %err, "rtp receive failed");
                }
            }
        }
    }

    fn set_mode(&mut self, mode: Mode) {
        if mode == Mode::Hold && self.mode != Mode::Hold {
            self.player.restart(Instant::now());
        }
        self.mode = mode;
        self.stats.mode.store(mode.code(), Relaxed);
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Hold => self.set_mode(Mode::Hold),
            Command::Stop => self.set_mode(Mode::Stopped),
            Command::Bridge(agent) => {
                self.agent = Some(Leg::new(agent.socket, agent.remote));
                self.set_mode(Mode::Bridge);
            }
            Command::Resume if self.agent.is_some() => self.set_mode(Mode::Bridge),
            Command::Resume => warn!("resume without an agent leg: the call stays as it is"),
            Command::ReleaseAgent => {
                self.agent = None;
                self.set_mode(Mode::Hold);
            }
            Command::UpdateCaller(remote) => {
                self.caller.latch.resignal(remote);
                // Hold audio to a new address is a new talkspurt.
                if self.mode == Mode::Hold {
                    self.player.restart(Instant::now());
                }
            }
            Command::UpdateAgent(remote) => match self.agent.as_mut() {
                Some(agent) => agent.latch.resignal(remote),
                None => warn!("agent media update without an agent leg"),
            },
        }
    }

    fn send_hold_packet(&mut self) {
        let Some(destination) = self.caller.latch.destination() else {
            return;
        };
        let packet = self.player.next_packet(Instant::now());
        match self.caller.socket.socket().try_send_to(packet, destination) {
            Ok(_) => {
                self.stats.hold_sent.fetch_add(1, Relaxed);
                self.metrics.hold_sent.increment(1);
            }
            Err(err) => {
                debug!(error = %err, %destination, "hold audio send failed");
                self.stats.hold_send_failed.fetch_add(1, Relaxed);
                self.metrics.hold_send_failed.increment(1);
            }
        }
    }

    fn on_caller_packet(&mut self, len: usize, source: SocketAddr) {
        let received_at = Instant::now();
        let (stats, metrics) = (&self.stats.from_caller, &self.metrics.from_caller);
        let Some(header) = accept(
            &mut self.caller,
            len,
            source,
            received_at,
            self.epoch,
            stats,
            metrics,
        ) else {
            return;
        };
        if Some(header.payload_type) == self.telephone_event {
            self.detect_dtmf(len, header.timestamp);
        }
        let target = match (self.mode, self.agent.as_ref()) {
            (Mode::Bridge, Some(agent)) => Some(agent),
            _ => None,
        };
        relay(
            &self.caller.buffer[..len],
            target,
            received_at,
            &self.stats,
            &self.metrics,
            Direction::FromCaller,
        );
    }

    fn on_agent_packet(&mut self, len: usize, source: SocketAddr) {
        let received_at = Instant::now();
        let Some(agent) = self.agent.as_mut() else {
            return;
        };
        let (stats, metrics) = (&self.stats.from_agent, &self.metrics.from_agent);
        if accept(agent, len, source, received_at, self.epoch, stats, metrics).is_none() {
            return;
        }
        let target = (self.mode == Mode::Bridge).then_some(&self.caller);
        relay(
            &agent.buffer[..len],
            target,
            received_at,
            &self.stats,
            &self.metrics,
            Direction::FromAgent,
        );
    }

    fn detect_dtmf(&mut self, len: usize, timestamp: u32) {
        let Ok(packet) = RtpPacket::parse(&self.caller.buffer[..len]) else {
            return;
        };
        let Ok(event) = TelephoneEvent::parse(packet.payload) else {
            return;
        };
        for digit in self
            .dtmf_detector
            .push(timestamp, event)
            .into_iter()
            .flatten()
        {
            self.stats.dtmf_digits.fetch_add(1, Relaxed);
            self.metrics.dtmf_digits.increment(1);
            debug!(digit = %digit.digit, "dtmf from the caller");
            if let Some(dtmf) = &self.dtmf {
                // The receiver went away: nobody listens for digits any more,
                // which is its choice; the call goes on.
                let _ = dtmf.send(digit);
            }
        }
    }
}

/// Which way a relayed packet goes, for its counters.
#[derive(Clone, Copy)]
enum Direction {
    FromCaller,
    FromAgent,
}

/// Waits for the agent leg's next datagram, or forever without one.
async fn recv_agent(agent: Option<&mut Leg>) -> std::io::Result<(usize, SocketAddr)> {
    match agent {
        Some(agent) => agent.socket.socket().recv_from(&mut agent.buffer[..]).await,
        None => std::future::pending().await,
    }
}

/// Checks a datagram that arrived on a leg: source (latching) and RTP
/// header; updates the leg's jitter. Returns the header if accepted.
fn accept(
    leg: &mut Leg,
    len: usize,
    source: SocketAddr,
    received_at: Instant,
    epoch: Instant,
    stats: &InboundStats,
    metrics: &InboundMetrics,
) -> Option<RtpHeader> {
    if !leg.latch.accepts(source) {
        stats.dropped_source.fetch_add(1, Relaxed);
        metrics.dropped_source.increment(1);
        return None;
    }
    let Ok(packet) = RtpPacket::parse(&leg.buffer[..len]) else {
        stats.dropped_malformed.fetch_add(1, Relaxed);
        metrics.dropped_malformed.increment(1);
        return None;
    };
    let header = packet.header;
    let arrival = received_at.saturating_duration_since(epoch);
    let arrival_units = (arrival.as_micros() * u128::from(Codec::CLOCK_RATE) / 1_000_000) as u32;
    let jitter_x16 = leg
        .jitter
        .update(header.ssrc, header.timestamp, arrival_units);
    stats.jitter_x16.store(jitter_x16, Relaxed);
    if leg.jitter_sampled_at.is_none_or(|sampled| {
        received_at.saturating_duration_since(sampled) >= JITTER_SAMPLE_INTERVAL
    }) {
        leg.jitter_sampled_at = Some(received_at);
        metrics
            .jitter
            .record(f64::from(jitter_x16) / 16.0 / f64::from(Codec::CLOCK_RATE));
    }
    Some(header)
}

/// Sends an accepted datagram on, unchanged, to the other leg's latched
/// (else signalled) address; without a target it is absorbed.
fn relay(
    datagram: &[u8],
    target: Option<&Leg>,
    received_at: Instant,
    stats: &CallStats,
    metrics: &CallMetrics,
    direction: Direction,
) {
    let (inbound_stats, inbound_metrics) = match direction {
        Direction::FromCaller => (&stats.from_caller, &metrics.from_caller),
        Direction::FromAgent => (&stats.from_agent, &metrics.from_agent),
    };
    let Some((socket, destination)) = target.and_then(|leg| {
        leg.latch
            .destination()
            .map(|destination| (&leg.socket, destination))
    }) else {
        inbound_stats.absorbed.fetch_add(1, Relaxed);
        inbound_metrics.absorbed.increment(1);
        return;
    };
    match socket.socket().try_send_to(datagram, destination) {
        Ok(_) => {
            let latency = received_at.elapsed();
            stats.relay_latency.record(latency);
            metrics.relay_latency.record(latency.as_secs_f64());
            inbound_stats.relayed.fetch_add(1, Relaxed);
            inbound_metrics.relayed.increment(1);
        }
        Err(err) => {
            debug!(error = %err, %destination, "rtp relay send failed");
            inbound_stats.send_failed.fetch_add(1, Relaxed);
            inbound_metrics.send_failed.increment(1);
        }
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
            let mut latch = Latch {
                signalled: signalled.map(addr),
                latched: None,
            };
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
        let mut latch = Latch {
            signalled: Some(addr("10.0.0.1:4000")),
            latched: None,
        };
        assert!(latch.accepts(addr("10.0.0.1:5000")));
        latch.resignal(Some(addr("10.0.0.9:4000")));
        assert!(!latch.accepts(addr("10.0.0.1:5000")));
        assert_eq!(latch.destination(), Some(addr("10.0.0.9:4000")));
        latch.resignal(None);
        assert_eq!(latch.destination(), None);
    }

    fn player() -> HoldPlayer {
        let format = MediaFormat {
            codec: Codec::Pcma,
            payload_type: 8,
            telephone_event: None,
        };
        HoldPlayer::new(format, Instant::now())
    }

    fn header(packet: &[u8]) -> RtpHeader {
        RtpPacket::parse(packet).unwrap().header
    }

    #[tokio::test(start_paused = true)]
    async fn hold_packets_count_up_and_keep_the_schedule() {
        let mut player = player();
        let start = Instant::now();
        player.restart(start);
        let first = header(player.next_packet(start));
        assert!(first.marker);
        assert_eq!(first.payload_type, 8);
        for n in 1..10u32 {
            let due = player.next_send_at;
            assert_eq!(due, start + PACKET_INTERVAL * n, "no drift");
            // Even when woken late, the schedule stays absolute.
            let packet = header(player.next_packet(due + Duration::from_millis(3)));
            assert!(!packet.marker);
            assert_eq!(packet.ssrc, first.ssrc);
            assert_eq!(packet.sequence, first.sequence.wrapping_add(n as u16));
            assert_eq!(packet.timestamp, first.timestamp.wrapping_add(160 * n));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_restart_is_a_talkspurt_whose_timestamp_covers_the_gap() {
        let mut player = player();
        let start = Instant::now();
        let first = header(player.next_packet(start));
        let second = header(player.next_packet(start + PACKET_INTERVAL));
        // 1 s in bridge mode, then hold again.
        let back = start + PACKET_INTERVAL + Duration::from_secs(1);
        player.restart(back);
        let third = header(player.next_packet(back));
        assert!(third.marker);
        assert_eq!(third.ssrc, first.ssrc);
        assert_eq!(third.sequence, second.sequence.wrapping_add(1));
        assert_eq!(third.timestamp, second.timestamp.wrapping_add(8000));
        assert_eq!(player.next_send_at, back + PACKET_INTERVAL);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stall_longer_than_the_catch_up_starts_a_new_talkspurt() {
        let mut player = player();
        let start = Instant::now();
        let _ = player.next_packet(start);
        let late = start + Duration::from_millis(500);
        let _ = player.next_packet(late);
        assert!(player.talkspurt);
        assert_eq!(player.next_send_at, late + PACKET_INTERVAL);
    }

    #[test]
    fn frames_loop() {
        let mut player = player();
        let now = Instant::now();
        let frames = player.frames.len();
        let first_payload = player.next_packet(now)[HEADER_LEN..].to_vec();
        for _ in 1..frames {
            let _ = player.next_packet(now);
        }
        assert_eq!(&player.next_packet(now)[HEADER_LEN..], &first_payload[..]);
    }
}
