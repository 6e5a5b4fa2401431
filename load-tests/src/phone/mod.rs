//! The phone scenarios, over SIP and RTP on loopback (docs/voice.md):
//! `call-setup` (callers at a rate, setup time INVITE → 200) and
//! `voice-relay` (calls answered by agents' phones, RTP both ways through
//! the server's relay).
//!
//! They run in the coordinator's process, not in workers: a call costs a
//! SIP socket and, for the relay, a share of a few RTP sockets
//! ([`media`]), so 1,000 calls with their agents (desktop WebSocket + phone
//! socket each) stay far below one process's 20,000 open files.

pub mod caller;
pub mod handset;
pub mod media;
pub mod server_stats;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::net::UdpSocket;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use self::caller::{Answered, Caller};
use self::handset::{Handset, PhoneEvent};
use self::media::Direction;
use crate::agent::{AgentBehaviour, AgentRun};
use crate::report::{Check, Memory, Report};
use crate::run::RunOptions;
use crate::scenario::Kind;
use crate::stats::{Percentiles, Stats, new_histogram};
use crate::target::{SIP_PASSWORD, Server, agent_id};
use crate::wire::{self, Endpoint};

/// Histograms of the phone scenarios (µs).
pub mod hist {
    /// INVITE sent → 200 OK received.
    pub const CALL_SETUP: &str = "call_setup";
    /// A caller's RTP packet sent → the agent's phone receives it.
    pub const CALLER_TO_AGENT: &str = "rtp_caller_to_agent";
    /// An agent's RTP packet sent → the caller receives it.
    pub const AGENT_TO_CALLER: &str = "rtp_agent_to_caller";
}

/// How long a SIP transaction may take before it counts as failed.
const SIP_TIMEOUT: Duration = Duration::from_secs(10);

/// The caller number of call `idx` (distinct per call: the server limits
/// new sessions per customer).
fn number(idx: u32) -> String {
    format!("+86138{idx:08}")
}

/// Which call a number belongs to.
fn call_of(number: &str) -> Option<u32> {
    number.strip_prefix("+86138")?.parse().ok()
}

/// Runs a phone scenario against `server`.
pub async fn drive(options: &RunOptions, server: &Server) -> Result<Report> {
    let sip = server
        .sip
        .context("the server printed no SIP address (is [voice] enabled?)")?;
    match options.kind {
        Kind::CallSetup => call_setup(options, server, sip).await,
        Kind::VoiceRelay => voice_relay(options, server, sip).await,
        other => bail!("{other} is not a phone scenario"),
    }
}

/// Agents signed in on the desktop (available) with their phones
/// registered and answering.
struct Agents {
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    events: mpsc::UnboundedReceiver<(u32, PhoneEvent)>,
}

/// Signs in `n` agents and registers their phones; agent `a`'s phone
/// advertises `rtp_port(a)`.
async fn start_agents(
    server: &Server,
    sip: SocketAddr,
    n: u32,
    stats: &Stats,
    rtp_port: impl Fn(u32) -> u16,
) -> Result<Agents> {
    let (stop, stopped) = watch::channel(false);
    let (events_tx, events) = mpsc::unbounded_channel();
    let mut tasks = JoinSet::new();
    let permits = Arc::new(Semaphore::new(100));
    let mut setups = JoinSet::new();
    for idx in 0..n {
        let permit = permits.clone().acquire_owned().await?;
        let id = agent_id(idx);
        let agent = AgentRun {
            token: server.token(&id, "agent"),
            id: id.clone(),
            source: "127.0.0.1".parse()?,
            endpoint: Endpoint { addr: server.addr },
            behaviour: AgentBehaviour {
                wrap_up: Duration::ZERO,
            },
            stats: stats.clone(),
            // One node: a lost socket is an error.
            failover: Default::default(),
        };
        let port = rtp_port(idx);
        setups.spawn(async move {
            let socket = agent.connect().await?;
            let handset = Handset::new(sip, id.clone(), SIP_PASSWORD.to_string()).await?;
            handset
                .register(SIP_TIMEOUT)
                .await
                .with_context(|| format!("phone of {id}"))?;
            drop(permit);
            anyhow::Ok((idx, socket, handset, port))
        });
    }
    while let Some(joined) = setups.join_next().await {
        let (idx, mut socket, handset, port) = joined.context("an agent set-up panicked")??;
        let events_tx = events_tx.clone();
        tasks.spawn(handset.answer(port, mpsc_map(events_tx, idx), stopped.clone()));
        // The desktop only has to stay available and read what comes: the
        // phone's answer takes the call.
        let mut stopped = stopped.clone();
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    changed = stopped.changed() => if changed.is_err() || *stopped.borrow() { break },
                    text = wire::next_text(&mut socket) => if !matches!(text, Ok(Some(_))) { break },
                }
            }
            // The run is over; a failed close changes nothing measured.
            let _ = socket.close(None).await;
        });
    }
    Ok(Agents {
        stop,
        tasks,
        events,
    })
}

/// A sender of phone events that tags them with the agent.
fn mpsc_map(
    tagged: mpsc::UnboundedSender<(u32, PhoneEvent)>,
    agent: u32,
) -> mpsc::UnboundedSender<PhoneEvent> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            if tagged.send((agent, event)).is_err() {
                return;
            }
        }
    });
    tx
}

impl Agents {
    async fn stop(mut self) {
        // Nobody may be listening any more; the tasks end either way.
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Starts `n` jobs, job `idx` at `start + idx / rate`, and collects their results.
async fn at_rate<T, F, Fut>(n: u32, rate: f64, job: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(u32) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let start = Instant::now() + Duration::from_millis(50);
    let mut tasks = JoinSet::new();
    for idx in 0..n {
        tokio::time::sleep_until(start + Duration::from_secs_f64(f64::from(idx) / rate)).await;
        tasks.spawn(job(idx));
    }
    let mut results = Vec::with_capacity(n as usize);
    while let Some(joined) = tasks.join_next().await {
        if let Ok(result) = joined {
            results.push(result);
        }
    }
    results
}

/// A socket that takes hold audio and counts it.
fn hold_sink() -> Result<(
    Arc<UdpSocket>,
    watch::Sender<bool>,
    tokio::task::JoinHandle<media::Received>,
)> {
    let socket = Arc::new(media::bind_rtp()?);
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(media::receive(socket.clone(), stopped));
    Ok((socket, stop, task))
}

/// What the report of a run in the coordinator's process (the phone and
/// channel scenarios) is built from.
pub(crate) struct Measured {
    pub(crate) stats: Stats,
    pub(crate) extra_latency: BTreeMap<String, hdrhistogram::Histogram<u64>>,
    pub(crate) counters: BTreeMap<String, i64>,
    pub(crate) figures: BTreeMap<String, f64>,
    pub(crate) checks: Vec<Check>,
    pub(crate) measured_secs: f64,
    pub(crate) memory: Memory,
}

/// The report of a run in the coordinator's process.
pub(crate) fn report(options: &RunOptions, started_at: String, measured: Measured) -> Report {
    let snapshot = measured.stats.snapshot();
    let mut latency = BTreeMap::new();
    for (name, buckets) in &snapshot.histograms {
        let mut histogram = new_histogram();
        crate::stats::add_buckets(&mut histogram, buckets);
        latency.insert(name.clone(), Percentiles::of(&histogram));
    }
    for (name, histogram) in &measured.extra_latency {
        latency.insert(name.clone(), Percentiles::of(histogram));
    }
    let mut counters = snapshot.counters;
    counters.extend(measured.counters);
    let mut checks = vec![Check::new(
        "errors",
        0,
        snapshot.errors.values().sum::<u64>() as i64,
    )];
    checks.extend(measured.checks);
    let passed = checks.iter().all(|check| check.ok);
    Report {
        scenario: options.kind,
        target: crate::target::TargetKind::Switchboard,
        params: options.params.clone(),
        started_at,
        machine: crate::run::machine(),
        command: options.command.clone(),
        processes: 1,
        sources: 1,
        measured_secs: measured.measured_secs,
        latency,
        counters,
        errors: snapshot.errors,
        durable_messages_per_sec: 0.0,
        checks,
        memory: measured.memory,
        service_level: None,
        series: Vec::new(),
        passed,
        figures: measured.figures,
    }
}

/// Callers at `rate` calls/s for `duration_secs`, each hanging up after
/// `hold_secs`; with `agents` > 0 agents' phones answer what they can.
async fn call_setup(options: &RunOptions, server: &Server, sip: SocketAddr) -> Result<Report> {
    let params = &options.params;
    let started_at = crate::now_rfc3339();
    let stats = Stats::default();
    let rss_start = server.rss_kib();
    let (sink, sink_stop, sink_task) = hold_sink()?;
    let sink_port = sink.local_addr()?.port();
    // The agents' phones' audio (when agents answer) is read and dropped.
    let (agent_sink, agent_sink_stop, agent_sink_task) = hold_sink()?;
    let agent_port = agent_sink.local_addr()?.port();
    let agents = start_agents(server, sip, params.agents, &stats, |_| agent_port).await?;
    let rss_go = server.rss_kib();
    let n_calls = (params.rate * params.duration_secs).round() as u32;
    let run_tag = format!("{}", crate::wire::now_ns());
    let hold = Duration::from_secs_f64(params.hold_secs);
    let ticks = server_stats::ticks_per_sec();
    let cpu_before = server.pid.and_then(server_stats::cpu_ticks);
    let go = Instant::now();
    let setup_done: Arc<Mutex<Option<Instant>>> = Arc::default();
    let results = at_rate(n_calls, params.rate, |idx| {
        let stats = stats.clone();
        let run_tag = run_tag.clone();
        let setup_done = setup_done.clone();
        async move {
            stats.add("calls_placed", 1);
            let mut caller = match Caller::new(sip, number(idx), &run_tag).await {
                Ok(caller) => caller,
                Err(failure) => {
                    stats.error(format!("INVITE {failure}"));
                    return;
                }
            };
            match caller.invite(sink_port, SIP_TIMEOUT).await {
                Ok(Answered { setup, .. }) => {
                    stats.record(hist::CALL_SETUP, setup.as_micros() as u64);
                    stats.add("calls_answered", 1);
                    let now = Instant::now();
                    let mut done = setup_done.lock().unwrap_or_else(|p| p.into_inner());
                    *done = Some(done.map_or(now, |at: Instant| at.max(now)));
                }
                Err(failure) => {
                    stats.add("calls_failed", 1);
                    stats.add("sip_requests_resent", i64::from(caller.resent));
                    stats.error(format!("INVITE {failure}"));
                    return;
                }
            }
            tokio::time::sleep(hold).await;
            match caller.bye(SIP_TIMEOUT).await {
                Ok(()) => stats.add("calls_hung_up", 1),
                Err(failure) => stats.error(format!("BYE {failure}")),
            }
            stats.add("sip_requests_resent", i64::from(caller.resent));
        }
    })
    .await;
    drop(results);
    let measured_secs = go.elapsed().as_secs_f64();
    let cpu_after = server.pid.and_then(server_stats::cpu_ticks);
    let rss_end = server.rss_kib();
    // The agents' phones have had their BYEs by now (each caller waited for
    // its 200, which the server sends after ending the call).
    let mut agents = agents;
    let mut answered_by_phones = 0;
    while let Ok((_, event)) = agents.events.try_recv() {
        if matches!(event, PhoneEvent::Answered { .. }) {
            answered_by_phones += 1;
        }
    }
    agents.stop().await;
    let _ = sink_stop.send(true); // the sink may have ended on an error
    let sink = sink_task.await.context("the hold sink panicked")?;
    let _ = agent_sink_stop.send(true); // as above
    agent_sink_task.await.context("the agents' sink panicked")?;
    let answered = stats.counter("calls_answered");
    let mut figures = BTreeMap::new();
    figures.insert("calls_per_sec_target".into(), params.rate);
    let last_answer = *setup_done.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(last) = last_answer {
        // Answered calls over the time from the first INVITE to the last 200.
        let span = last.duration_since(go).as_secs_f64().max(1e-9);
        figures.insert("calls_answered_per_sec".into(), answered as f64 / span);
    }
    if let (Some(before), Some(after)) = (cpu_before, cpu_after) {
        figures.insert(
            "server_cpu_cores".into(),
            (after - before) as f64 / ticks / measured_secs,
        );
    }
    let mut counters = BTreeMap::new();
    counters.insert("hold_audio_packets_received".into(), sink.unmarked as i64);
    counters.insert("calls_answered_by_agents_phones".into(), answered_by_phones);

    let checks = vec![
        Check::new(
            "calls placed",
            i64::from(n_calls),
            stats.counter("calls_placed"),
        ),
        Check::new("calls answered = placed", i64::from(n_calls), answered),
        Check::new(
            "calls hung up = answered",
            answered,
            stats.counter("calls_hung_up"),
        ),
    ];
    Ok(report(
        options,
        started_at,
        Measured {
            stats,
            extra_latency: BTreeMap::new(),
            counters,
            figures,
            checks,
            measured_secs,
            memory: Memory {
                rss_start_kib: rss_start,
                rss_go_kib: rss_go,
                rss_peak_kib: rss_end.max(rss_go),
                rss_end_kib: rss_end,
                ..Memory::default()
            },
        },
    ))
}

/// The caller leg's and the agent leg's RTP at the server, and which agent
/// socket the agent's phone advertised.
#[derive(Debug, Clone, Default)]
struct Bridge {
    caller_media: Option<SocketAddr>,
    agent_media: Option<SocketAddr>,
    agent_socket: Option<usize>,
    acked: bool,
}

/// `calls` calls answered by agents' phones, then RTP both ways for
/// `media_secs`.
async fn voice_relay(options: &RunOptions, server: &Server, sip: SocketAddr) -> Result<Report> {
    let params = &options.params;
    let started_at = crate::now_rfc3339();
    let stats = Stats::default();
    let rss_start = server.rss_kib();
    let n_calls = params.calls;
    let n_sockets = params.rtp_sockets as usize;
    let mut caller_sockets = Vec::new();
    let mut agent_sockets = Vec::new();
    for _ in 0..n_sockets {
        caller_sockets.push(Arc::new(media::bind_rtp()?));
        agent_sockets.push(Arc::new(media::bind_rtp()?));
    }
    let port = |socket: &Arc<UdpSocket>| socket.local_addr().map(|addr| addr.port());
    let caller_ports: Vec<u16> = caller_sockets.iter().map(port).collect::<Result<_, _>>()?;
    let agent_ports: Vec<u16> = agent_sockets.iter().map(port).collect::<Result<_, _>>()?;
    // Receivers read from the start: hold audio comes before the bridge.
    let (stop_receivers, receivers_stopped) = watch::channel(false);
    let mut receivers = JoinSet::new();
    for socket in caller_sockets.iter().chain(&agent_sockets) {
        receivers.spawn(media::receive(socket.clone(), receivers_stopped.clone()));
    }
    let mut agents = start_agents(server, sip, params.agents, &stats, |agent| {
        agent_ports[agent as usize % n_sockets]
    })
    .await?;
    stats.add("agents_ready", i64::from(params.agents));

    // Set-up: place the calls, wait until every answered one is bridged.
    let run_tag = format!("{}", crate::wire::now_ns());
    let setup_started = Instant::now();
    let placed = at_rate(n_calls, params.rate, |idx| {
        let stats = stats.clone();
        let run_tag = run_tag.clone();
        let rtp_port = caller_ports[idx as usize % n_sockets];
        async move {
            stats.add("calls_placed", 1);
            let mut caller = Caller::new(sip, number(idx), &run_tag).await.ok()?;
            match caller.invite(rtp_port, SIP_TIMEOUT).await {
                Ok(answered) => {
                    stats.record(hist::CALL_SETUP, answered.setup.as_micros() as u64);
                    stats.add("calls_answered", 1);
                    Some((idx, caller, answered.media))
                }
                Err(failure) => {
                    stats.add("calls_failed", 1);
                    stats.error(format!("INVITE {failure}"));
                    None
                }
            }
        }
    })
    .await;
    let mut bridges: Vec<Bridge> = vec![Bridge::default(); n_calls as usize];
    let mut callers: Vec<Caller> = Vec::new();
    for (idx, caller, media) in placed.into_iter().flatten() {
        bridges[idx as usize].caller_media = Some(media);
        callers.push(caller);
    }
    let n_answered = callers.len();
    let mut n_acked = 0;
    let bridge_deadline = Instant::now() + SIP_TIMEOUT + Duration::from_secs(20);
    let mut unexpected = Vec::new();
    while n_acked < n_answered {
        let Ok(Some((agent, event))) =
            tokio::time::timeout_at(bridge_deadline, agents.events.recv()).await
        else {
            break;
        };
        match event {
            PhoneEvent::Answered { caller, media } => {
                if let Some(bridge) = call_of(&caller).and_then(|idx| bridges.get_mut(idx as usize))
                {
                    bridge.agent_media = Some(media);
                    bridge.agent_socket = Some(agent as usize % n_sockets);
                }
            }
            PhoneEvent::Acked { caller } => {
                if let Some(bridge) = call_of(&caller).and_then(|idx| bridges.get_mut(idx as usize))
                    && !bridge.acked
                {
                    bridge.acked = true;
                    n_acked += 1;
                }
            }
            PhoneEvent::HungUp { .. } => {
                stats.error("an agent's call ended before the media phase")
            }
            PhoneEvent::Unexpected(what) => unexpected.push(what),
        }
    }
    let setup_secs = setup_started.elapsed().as_secs_f64();
    let bridged: Vec<u32> = (0..n_calls)
        .filter(|&idx| {
            let bridge = &bridges[idx as usize];
            bridge.acked && bridge.caller_media.is_some() && bridge.agent_media.is_some()
        })
        .collect();
    stats.add("calls_bridged", bridged.len() as i64);
    if bridged.len() < n_answered {
        stats.error(format!(
            "{} answered calls never reached an agent's phone within {:?}",
            n_answered - bridged.len(),
            bridge_deadline - setup_started
        ));
    }

    // The media phase.
    let n_packets = (params.media_secs * 50.0).round() as u32;
    let mut figures = BTreeMap::new();
    let admin = server
        .admin
        .context("the server printed no admin address")?;
    let metrics_before = server_stats::scrape(admin).await?;
    let ticks = server_stats::ticks_per_sec();
    let rss_go = server.rss_kib();
    let cpu_before = server.pid.and_then(server_stats::cpu_ticks);
    let own_cpu_before = server_stats::cpu_ticks(std::process::id());
    let rcvbuf_errors_before = server_stats::udp_rcvbuf_errors();
    let media_started = Instant::now();
    let start = media_started + Duration::from_millis(100);
    let mut senders = JoinSet::new();
    for k in 0..n_sockets {
        // Sockets take turns within the 20 ms, not all at once.
        let offset = media::PACKET_INTERVAL.mul_f64(k as f64 / n_sockets as f64);
        let from_callers = bridged
            .iter()
            .filter(|&&idx| idx as usize % n_sockets == k)
            .filter_map(|&idx| Some((idx, bridges[idx as usize].caller_media?)))
            .collect();
        let from_agents = bridged
            .iter()
            .filter(|&&idx| bridges[idx as usize].agent_socket == Some(k))
            .filter_map(|&idx| Some((idx, bridges[idx as usize].agent_media?)))
            .collect();
        let caller_socket = caller_sockets[k].clone();
        let agent_socket = agent_sockets[k].clone();
        senders.spawn(async move {
            (
                Direction::CallerToAgent,
                media::send(
                    caller_socket,
                    Direction::CallerToAgent,
                    from_callers,
                    n_packets,
                    start + offset,
                )
                .await,
            )
        });
        senders.spawn(async move {
            (
                Direction::AgentToCaller,
                media::send(
                    agent_socket,
                    Direction::AgentToCaller,
                    from_agents,
                    n_packets,
                    start + offset,
                )
                .await,
            )
        });
    }
    let mut sent: HashMap<Direction, (u64, u64)> = HashMap::new();
    while let Some(joined) = senders.join_next().await {
        let (direction, (ok, failed)) = joined.context("an RTP sender panicked")?;
        let entry = sent.entry(direction).or_default();
        entry.0 += ok;
        entry.1 += failed;
    }
    let media_secs = media_started.elapsed().as_secs_f64();
    let cpu_after = server.pid.and_then(server_stats::cpu_ticks);
    let own_cpu_after = server_stats::cpu_ticks(std::process::id());
    let rss_media = server.rss_kib();
    // Packets still on their way (the relay adds well under a millisecond).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let metrics_after = server_stats::scrape(admin).await?;
    if let (Some(before), Some(after)) = (rcvbuf_errors_before, server_stats::udp_rcvbuf_errors()) {
        // Host-wide: other processes' drops count too.
        figures.insert(
            "host_udp_rcvbuf_errors_media".to_string(),
            (after - before) as f64,
        );
    }
    let _ = stop_receivers.send(true); // receivers that failed are missing from the sums below
    let mut latency: HashMap<Direction, hdrhistogram::Histogram<u64>> = HashMap::new();
    let mut streams: HashMap<(u32, Direction), media::Stream> = HashMap::new();
    let mut unmarked = 0;
    while let Some(joined) = receivers.join_next().await {
        let received = joined.context("an RTP receiver panicked")?;
        for (direction, histogram) in received.latency {
            latency
                .entry(direction)
                .or_insert_with(new_histogram)
                .add(histogram)
                .ok();
        }
        streams.extend(received.streams);
        unmarked += received.unmarked;
    }

    // Hang up at the rate the calls came: the callers' BYEs, and the
    // phones' BYEs from the server.
    let hangups_start = Instant::now();
    let mut byes = JoinSet::new();
    for (idx, mut caller) in callers.into_iter().enumerate() {
        tokio::time::sleep_until(hangups_start + Duration::from_secs_f64(idx as f64 / params.rate))
            .await;
        byes.spawn(async move {
            let result = caller.bye(SIP_TIMEOUT).await;
            (result, caller.resent)
        });
    }
    while let Some(joined) = byes.join_next().await {
        match joined {
            Ok((result, resent)) => {
                stats.add("sip_requests_resent", i64::from(resent));
                match result {
                    Ok(()) => stats.add("calls_hung_up", 1),
                    Err(failure) => stats.error(format!("BYE {failure}")),
                }
            }
            Err(_) => stats.error("a BYE task panicked"),
        }
    }
    let mut phones_hung_up = 0;
    let hangup_deadline = Instant::now() + SIP_TIMEOUT;
    while phones_hung_up < bridged.len() {
        match tokio::time::timeout_at(hangup_deadline, agents.events.recv()).await {
            Ok(Some((_, PhoneEvent::HungUp { .. }))) => phones_hung_up += 1,
            Ok(Some((_, PhoneEvent::Unexpected(what)))) => unexpected.push(what),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    stats.add("agent_phones_hung_up", phones_hung_up as i64);
    agents.stop().await;
    for what in unexpected {
        stats.error(format!("phone: {what}"));
    }

    // The figures.
    let mut counters = BTreeMap::new();
    let mut checks = vec![
        Check::new(
            "calls answered = placed",
            i64::from(n_calls),
            stats.counter("calls_answered"),
        ),
        Check::new(
            "calls bridged to an agent's phone",
            i64::from(n_calls),
            bridged.len() as i64,
        ),
    ];
    let mut extra_latency = BTreeMap::new();
    for (direction, name, label) in [
        (
            Direction::CallerToAgent,
            hist::CALLER_TO_AGENT,
            "caller_to_agent",
        ),
        (
            Direction::AgentToCaller,
            hist::AGENT_TO_CALLER,
            "agent_to_caller",
        ),
    ] {
        let (ok, failed) = sent.get(&direction).copied().unwrap_or_default();
        let ours: Vec<&media::Stream> = streams
            .iter()
            .filter(|((_, d), _)| *d == direction)
            .map(|(_, stream)| stream)
            .collect();
        let received: u64 = ours.iter().map(|s| s.received).sum();
        let duplicates: u64 = ours.iter().map(|s| s.duplicates).sum();
        let reordered: u64 = ours.iter().map(|s| s.reordered).sum();
        counters.insert(format!("rtp_{label}_sent"), ok as i64);
        counters.insert(format!("rtp_{label}_send_failed"), failed as i64);
        counters.insert(format!("rtp_{label}_received"), received as i64);
        counters.insert(format!("rtp_{label}_lost"), ok as i64 - received as i64);
        counters.insert(format!("rtp_{label}_duplicates"), duplicates as i64);
        counters.insert(format!("rtp_{label}_reordered"), reordered as i64);
        checks.push(Check::new(
            &format!("RTP {label} lost"),
            0,
            ok as i64 - received as i64,
        ));
        checks.push(Check::new(
            &format!("RTP {label} sent"),
            i64::from(n_packets) * bridged.len() as i64,
            ok as i64,
        ));
        if !ours.is_empty() {
            let jitter: Vec<f64> = ours.iter().map(|s| s.jitter_ns / 1e6).collect();
            figures.insert(
                format!("jitter_{label}_mean_ms"),
                jitter.iter().sum::<f64>() / jitter.len() as f64,
            );
            figures.insert(
                format!("jitter_{label}_max_ms"),
                jitter.iter().copied().fold(0.0, f64::max),
            );
        }
        if let Some(histogram) = latency.remove(&direction) {
            extra_latency.insert(name.to_string(), histogram);
        }
    }
    counters.insert("hold_audio_packets_received".into(), unmarked as i64);
    figures.insert("setup_phase_secs".into(), setup_secs);
    figures.insert("media_phase_secs".into(), media_secs);
    // 50 × calls when the generator kept up; less when it fell behind.
    let sent_caller_to_agent = sent.get(&Direction::CallerToAgent).map_or(0, |s| s.0);
    figures.insert(
        "rtp_packets_per_sec_each_way".into(),
        sent_caller_to_agent as f64 / media_secs,
    );
    if let (Some(before), Some(after)) = (cpu_before, cpu_after) {
        figures.insert(
            "server_cpu_cores_media".into(),
            (after - before) as f64 / ticks / media_secs,
        );
    }
    if let (Some(before), Some(after)) = (own_cpu_before, own_cpu_after) {
        // The generator shares the machine: what it used is not the server's.
        figures.insert(
            "generator_cpu_cores_media".into(),
            (after - before) as f64 / ticks / media_secs,
        );
    }
    let deltas = server_stats::deltas(&metrics_before, &metrics_after, "switchboard_rtp_");
    for q in [0.5, 0.99, 0.999] {
        if let Some(ms) =
            server_stats::bucket_quantile_ms(&deltas, "switchboard_rtp_relay_latency_seconds", q)
        {
            figures.insert(format!("server_relay_p{}_ms_at_most", q * 100.0), ms);
        }
    }
    if let (Some(sum), Some(count)) = (
        deltas.get("switchboard_rtp_relay_latency_seconds_sum"),
        deltas.get("switchboard_rtp_relay_latency_seconds_count"),
    ) && *count > 0.0
    {
        figures.insert("server_relay_mean_ms".into(), sum / count * 1_000.0);
    }
    for (key, value) in &deltas {
        if key.starts_with("switchboard_rtp_packets_total{") && *value != 0.0 {
            // `server_rtp_packets{direction="from_caller",outcome="relayed"}`
            let name = key.replace("switchboard_rtp_packets_total", "server_rtp_packets");
            counters.insert(name, *value as i64);
        }
    }
    Ok(report(
        options,
        started_at,
        Measured {
            stats,
            extra_latency,
            counters,
            figures,
            checks,
            measured_secs: media_secs,
            memory: Memory {
                rss_start_kib: rss_start,
                rss_go_kib: rss_go,
                rss_peak_kib: rss_media.max(rss_go),
                rss_end_kib: server.rss_kib(),
                ..Memory::default()
            },
        },
    ))
}
