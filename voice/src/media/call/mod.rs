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
//! A supervisor's phone may join as a third leg ([`CallMedia::supervise`]):
//! then who hears whom follows [`Monitoring`] (`supervised.rs`) — a party
//! that hears one other gets that party's packets relayed as they are, one
//! that hears two gets their mix, sent on a 20 ms tick.
//!
//! The task allocates nothing per packet: one receive buffer per leg and one
//! packet buffer for hold audio and per mixed stream, reused.

mod supervised;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use thiserror::Error;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::hold::{Clip, HoldStream};
use super::latch::Latch;
use super::metrics::{CallMetrics, InboundMetrics};
use super::mix::{Monitoring, Party};
use super::ports::RtpSocket;
use super::rtp::{Dtmf, DtmfDetector, RtpHeader, RtpPacket, TelephoneEvent};
use super::sdp::{Codec, MediaFormat};
use super::stats::{CallStats, CallStatsSnapshot, InboundStats, JitterEstimator};
use supervised::Supervision;

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
    /// The IVR prompt, in a loop; the caller's packets are read for DTMF.
    Prompt,
}

impl Mode {
    pub(crate) fn code(self) -> u8 {
        match self {
            Mode::Hold => 0,
            Mode::Bridge => 1,
            Mode::Stopped => 2,
            Mode::Prompt => 3,
        }
    }

    pub(crate) fn from_code(code: u8) -> Mode {
        match code {
            0 => Mode::Hold,
            1 => Mode::Bridge,
            3 => Mode::Prompt,
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
    /// Hold to play the clip at once (queued callers, early media),
    /// Stopped to stay silent. Bridge needs an agent leg, so it starts as
    /// Stopped until [`CallMedia::bridge`].
    pub mode: Mode,
}

/// The agent-facing side of a bridge (or the supervisor's, for
/// [`CallMedia::supervise`]): the socket whose port was offered to the
/// phone, and where the phone's answer says to send.
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
    Prompt,
    Hold,
    Bridge(AgentLeg),
    Resume,
    ReleaseAgent,
    Stop,
    UpdateCaller(Option<SocketAddr>),
    UpdateAgent(Option<SocketAddr>),
    Supervise(AgentLeg, Monitoring),
    Monitor(Monitoring),
    ReleaseSupervisor,
    UpdateSupervisor(Option<SocketAddr>),
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
            supervisor: None,
            supervision: None,
            mode: Mode::Stopped,
            player: HoldStream::new(config.format, now),
            codec: config.format.codec,
            payload_type: config.format.payload_type,
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

    /// Plays the IVR prompt to the caller, in a loop.
    pub fn prompt(&self) -> Result<(), CallMediaEnded> {
        self.send(Command::Prompt)
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

    /// Attaches a supervisor's phone as a third leg (replacing any previous
    /// one), following the call as `monitoring` says.
    pub fn supervise(
        &self,
        supervisor: AgentLeg,
        monitoring: Monitoring,
    ) -> Result<(), CallMediaEnded> {
        self.send(Command::Supervise(supervisor, monitoring))
    }

    /// The supervisor on the call listens, whispers or barges in now.
    pub fn monitor(&self, monitoring: Monitoring) -> Result<(), CallMediaEnded> {
        self.send(Command::Monitor(monitoring))
    }

    /// Drops the supervisor's leg (freeing its port): caller and agent are
    /// relayed as before.
    pub fn release_supervisor(&self) -> Result<(), CallMediaEnded> {
        self.send(Command::ReleaseSupervisor)
    }

    /// The supervisor's phone moved its media: latching starts over.
    pub fn update_supervisor(&self, remote: Option<SocketAddr>) -> Result<(), CallMediaEnded> {
        self.send(Command::UpdateSupervisor(remote))
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
            latch: Latch::new(signalled),
            buffer: Box::new([0u8; RECV_BUFFER]),
            jitter: JitterEstimator::default(),
            jitter_sampled_at: None,
        }
    }
}

/// What woke the task.
enum Wake {
    Command(Option<Command>),
    HoldDue,
    FromCaller(std::io::Result<(usize, SocketAddr)>),
    FromAgent(std::io::Result<(usize, SocketAddr)>),
    FromSupervisor(std::io::Result<(usize, SocketAddr)>),
    MixDue,
}

/// The task's state; see the module doc.
struct CallTask {
    caller: Leg,
    agent: Option<Leg>,
    /// A supervisor's phone following the call.
    supervisor: Option<Leg>,
    /// Who hears whom, and the mix, while `supervisor` is there.
    supervision: Option<Supervision>,
    mode: Mode,
    player: HoldStream,
    /// The call's codec (the mix is encoded in it) and its payload type.
    codec: Codec,
    payload_type: u8,
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
        self.set_mode(match mode {
            Mode::Bridge => Mode::Stopped,
            Mode::Hold | Mode::Stopped | Mode::Prompt => mode,
        });
        let pacer = tokio::time::sleep_until(self.player.next_send_at());
        tokio::pin!(pacer);
        loop {
            let playing = matches!(self.mode, Mode::Hold | Mode::Prompt)
                && self.caller.latch.destination().is_some();
            if playing && pacer.deadline() != self.player.next_send_at() {
                pacer.as_mut().reset(self.player.next_send_at());
            }
            let wake = tokio::select! {
                biased;
                command = self.commands.recv() => Wake::Command(command),
                () = &mut pacer, if playing => Wake::HoldDue,
                received = self.caller.socket.socket().recv_from(&mut self.caller.buffer[..]) => {
                    Wake::FromCaller(received)
                }
                received = recv_leg(self.agent.as_mut()) => Wake::FromAgent(received),
                received = recv_leg(self.supervisor.as_mut()) => Wake::FromSupervisor(received),
                () = supervised::mix_due(self.supervision.as_mut()) => Wake::MixDue,
            };
            match wake {
                Wake::Command(None) => break,
                Wake::Command(Some(command)) => self.command(command),
                Wake::HoldDue => self.send_hold_packet(),
                Wake::FromCaller(Ok((len, source))) => self.on_caller_packet(len, source),
                Wake::FromAgent(Ok((len, source))) => self.on_agent_packet(len, source),
                Wake::FromSupervisor(Ok((len, source))) => self.on_supervisor_packet(len, source),
                Wake::MixDue => self.send_mix(),
                Wake::FromCaller(Err(err))
                | Wake::FromAgent(Err(err))
                | Wake::FromSupervisor(Err(err)) => {
                    // Unconnected UDP sockets report little (an ICMP error
                    // on some systems); the next datagram is unaffected.
                    debug!(error = %err, "rtp receive failed");
                }
            }
        }
    }

    fn set_mode(&mut self, mode: Mode) {
        let clip = match mode {
            Mode::Hold => Some(Clip::Hold),
            Mode::Prompt => Some(Clip::Prompt),
            Mode::Bridge | Mode::Stopped => None,
        };
        if let Some(clip) = clip
            && mode != self.mode
        {
            self.player.set_clip(clip);
            self.player.restart(Instant::now());
        }
        self.mode = mode;
        self.stats.mode.store(mode.code(), Relaxed);
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Prompt => self.set_mode(Mode::Prompt),
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
                if matches!(self.mode, Mode::Hold | Mode::Prompt) {
                    self.player.restart(Instant::now());
                }
            }
            Command::UpdateAgent(remote) => match self.agent.as_mut() {
                Some(agent) => agent.latch.resignal(remote),
                None => warn!("agent media update without an agent leg"),
            },
            Command::Supervise(supervisor, monitoring) => {
                self.supervisor = Some(Leg::new(supervisor.socket, supervisor.remote));
                self.set_monitoring(Some(monitoring));
            }
            Command::Monitor(monitoring) if self.supervisor.is_some() => {
                self.set_monitoring(Some(monitoring));
            }
            Command::Monitor(_) => warn!("monitoring change without a supervisor leg"),
            Command::ReleaseSupervisor => {
                self.supervisor = None;
                self.set_monitoring(None);
            }
            Command::UpdateSupervisor(remote) => match self.supervisor.as_mut() {
                Some(supervisor) => supervisor.latch.resignal(remote),
                None => warn!("supervisor media update without a supervisor leg"),
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
        let Some(header) = accept(&mut self.caller, len, source, stats, metrics) else {
            return;
        };
        if Some(header.payload_type) == self.telephone_event {
            self.detect_dtmf(len, header.timestamp);
        } else {
            self.caller
                .measure_jitter(header, received_at, self.epoch, stats, metrics);
        }
        if self.supervision.is_some() {
            return self.route_supervised(Party::Caller, len, header, received_at);
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
        let Some(header) = accept(agent, len, source, stats, metrics) else {
            return;
        };
        if Some(header.payload_type) != self.telephone_event {
            agent.measure_jitter(header, received_at, self.epoch, stats, metrics);
        }
        if self.supervision.is_some() {
            return self.route_supervised(Party::Agent, len, header, received_at);
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

/// Waits for a leg's next datagram, or forever without the leg.
async fn recv_leg(leg: Option<&mut Leg>) -> std::io::Result<(usize, SocketAddr)> {
    match leg {
        Some(leg) => leg.socket.socket().recv_from(&mut leg.buffer[..]).await,
        None => std::future::pending().await,
    }
}

/// Checks a datagram that arrived on a leg: source (latching) and RTP
/// header. Returns the header if accepted; counts the drop if not.
fn accept(
    leg: &mut Leg,
    len: usize,
    source: SocketAddr,
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
    Some(packet.header)
}

impl Leg {
    /// Updates the leg's RFC 3550 jitter with an audio packet (not a
    /// telephone-event: all packets of one key press share a timestamp,
    /// which would read as jitter), and samples it into the metrics once
    /// per [`JITTER_SAMPLE_INTERVAL`].
    fn measure_jitter(
        &mut self,
        header: RtpHeader,
        received_at: Instant,
        epoch: Instant,
        stats: &InboundStats,
        metrics: &InboundMetrics,
    ) {
        let arrival = received_at.saturating_duration_since(epoch);
        let arrival_units =
            (arrival.as_micros() * u128::from(Codec::CLOCK_RATE) / 1_000_000) as u32;
        let jitter_x16 = self
            .jitter
            .update(header.ssrc, header.timestamp, arrival_units);
        stats.jitter_x16.store(jitter_x16, Relaxed);
        let due = self.jitter_sampled_at.is_none_or(|sampled| {
            received_at.saturating_duration_since(sampled) >= JITTER_SAMPLE_INTERVAL
        });
        if due {
            self.jitter_sampled_at = Some(received_at);
            metrics
                .jitter
                .record(f64::from(jitter_x16) / 16.0 / f64::from(Codec::CLOCK_RATE));
        }
    }
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
