//! The RTP relay with many concurrent bridged calls on loopback.
//!
//! Two parts:
//!
//! 1. **Criterion, `relay/burst/<calls>`**: every call's caller and agent
//!    each send one 172-byte G.711 packet at once; the clock stops when all
//!    of them arrived on the other side. Throughput is relayed packets per
//!    second with the generator in the same process.
//! 2. **Paced load, printed after Criterion**: `N_PACED_CALLS` calls, each
//!    side sending 50 packets/s (a real G.711 call) for `PACED_SECONDS`;
//!    prints packets lost, the relay's added latency (recv → send, from
//!    `CallStatsSnapshot::relay_latency`, merged over calls), end-to-end
//!    latency through the relay (sender's clock in the payload), and the
//!    CPU time of the relay's thread.
//!
//! The media tasks run on their own runtime with **one** worker thread
//! ("relay"), the phones on another ("phones"), so the relay's CPU time is
//! measured apart from the generator's, and keeping up at all shows it
//! needs less than one core.
//!
//! `cargo bench -p voice --bench relay -- --warm-up-time 1 --measurement-time 5`
//!
//! The paced part runs under `cargo bench` only (not in `cargo test`).
//! One process may hold 20,000 files here: 1,000 calls use 4,000 sockets.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

mod common;

use common::threads_cpu_seconds;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tokio::net::UdpSocket;
use tokio::runtime::Runtime;
use voice::media::rtp::{HEADER_LEN, RtpHeader};
use voice::media::{
    AgentLeg, CallMedia, CallMediaConfig, CallStatsSnapshot, Codec, LatencyHistogramSnapshot,
    LatencySummary, MediaFormat, Mode, RtpSocket,
};

/// Calls in the paced run: the target of 1,000 relayed calls
/// (`RELAY_BENCH_CALLS` overrides it).
const N_PACED_CALLS: usize = 1000;
/// Length of the paced run.
const PACED_SECONDS: u64 = 10;
/// One G.711 packet: 12-byte header and 160 bytes of audio.
const PACKET_LEN: usize = HEADER_LEN + 160;

/// One bridged call and the two phones at its ends.
struct BenchCall {
    media: CallMedia,
    caller: Arc<UdpSocket>,
    agent: Arc<UdpSocket>,
    caller_facing: SocketAddr,
    agent_facing: SocketAddr,
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().expect("a socket address")
}

/// A UDP socket registered with the phones' runtime.
fn phone_socket(phones: &Runtime) -> Arc<UdpSocket> {
    let _context = phones.enter();
    let socket = std::net::UdpSocket::bind(loopback()).expect("phone socket");
    socket.set_nonblocking(true).expect("non-blocking");
    Arc::new(UdpSocket::from_std(socket).expect("registered"))
}

/// Bridged calls whose media tasks run on `relay`, with their phones'
/// sockets on `phones`.
fn bridged_calls(relay: &Runtime, phones: &Runtime, n_calls: usize) -> Vec<BenchCall> {
    let format = MediaFormat {
        codec: Codec::Pcmu,
        payload_type: 0,
        telephone_event: None,
    };
    let mut calls = Vec::with_capacity(n_calls);
    for _ in 0..n_calls {
        let caller = phone_socket(phones);
        let agent = phone_socket(phones);
        let _context = relay.enter();
        let media = CallMedia::start(
            RtpSocket::bind(loopback()).expect("caller-facing socket"),
            CallMediaConfig {
                format,
                caller: Some(caller.local_addr().expect("bound")),
                mode: Mode::Stopped,
            },
            None,
        );
        let agent_leg = RtpSocket::bind(loopback()).expect("agent-facing socket");
        let agent_facing = agent_leg.local_addr();
        media
            .bridge(AgentLeg {
                socket: agent_leg,
                remote: Some(agent.local_addr().expect("bound")),
            })
            .expect("the call runs");
        calls.push(BenchCall {
            caller_facing: media.local_addr(),
            media,
            caller,
            agent,
            agent_facing,
        });
    }
    while calls
        .iter()
        .any(|call| call.media.stats().mode != Mode::Bridge)
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    calls
}

/// The relay's runtime: one worker thread, so "under one core" holds by
/// construction if it keeps up; its CPU time is measured per thread.
fn relay_runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("relay")
        .enable_all()
        .build()
        .expect("relay runtime")
}

/// The phones' (load generator's) runtime, on its own thread: with the
/// relay's, one thread per core of a 2-core machine.
fn phones_runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("phones")
        .enable_all()
        .build()
        .expect("phones runtime")
}

fn end_calls(relay: &Runtime, calls: Vec<BenchCall>) -> Vec<CallStatsSnapshot> {
    relay.block_on(async {
        let mut stats = Vec::with_capacity(calls.len());
        for call in calls {
            stats.push(call.media.end().await);
        }
        stats
    })
}

/// An RTP packet whose payload starts with the send time since `epoch`.
fn packet(buffer: &mut [u8; PACKET_LEN], sequence: u16, ssrc: u32, epoch: Instant) {
    RtpHeader {
        marker: false,
        payload_type: 0,
        sequence,
        timestamp: u32::from(sequence) * 160,
        ssrc,
    }
    .write(buffer);
    let sent_nanos = epoch.elapsed().as_nanos() as u64;
    buffer[HEADER_LEN..HEADER_LEN + 8].copy_from_slice(&sent_nanos.to_be_bytes());
}

/// One burst: every caller and agent sends one packet, then every packet
/// is received on the other side.
async fn burst(calls: &[BenchCall], sequence: u16, epoch: Instant) {
    let mut buffer = [0u8; PACKET_LEN];
    for (index, call) in calls.iter().enumerate() {
        packet(&mut buffer, sequence, index as u32, epoch);
        call.caller
            .send_to(&buffer, call.caller_facing)
            .await
            .expect("caller sends");
        call.agent
            .send_to(&buffer, call.agent_facing)
            .await
            .expect("agent sends");
    }
    let mut received = [0u8; 2048];
    for call in calls {
        call.agent
            .recv_from(&mut received)
            .await
            .expect("relayed to the agent");
        call.caller
            .recv_from(&mut received)
            .await
            .expect("relayed to the caller");
    }
}

fn burst_throughput(c: &mut Criterion) {
    let relay = relay_runtime();
    let phones = phones_runtime();
    let mut group = c.benchmark_group("relay");
    for n_calls in [1usize, 100, 1000] {
        let calls = bridged_calls(&relay, &phones, n_calls);
        let epoch = Instant::now();
        let mut sequence = 0u16;
        group.throughput(Throughput::Elements(2 * n_calls as u64));
        group.bench_with_input(BenchmarkId::new("burst", n_calls), &calls, |b, calls| {
            b.iter(|| {
                sequence = sequence.wrapping_add(1);
                phones.block_on(burst(calls, sequence, epoch));
            });
        });
        let mut latency = LatencyHistogramSnapshot::default();
        for stats in end_calls(&relay, calls) {
            latency.merge(&stats.relay_latency);
        }
        println!(
            "relay/burst/{n_calls}: relay added latency {}",
            describe(&latency.summary())
        );
    }
    group.finish();
}

/// Sends 50 packets/s from one phone and counts, with their end-to-end
/// latency, the packets it receives.
async fn phone(
    socket: Arc<UdpSocket>,
    destination: SocketAddr,
    ssrc: u32,
    epoch: Instant,
    until: Instant,
    counters: Arc<PacedCounters>,
) {
    let receiver = {
        let socket = Arc::clone(&socket);
        let counters = Arc::clone(&counters);
        tokio::spawn(async move {
            let mut buffer = [0u8; 2048];
            let mut latencies = Vec::with_capacity(60 * 50);
            loop {
                // Until the run is over and nothing arrived for 500 ms, so
                // a backlog is counted late rather than lost.
                let deadline = until.max(Instant::now()) + Duration::from_millis(500);
                let received =
                    tokio::time::timeout_at(deadline.into(), socket.recv_from(&mut buffer)).await;
                let Ok(Ok((len, _))) = received else {
                    break;
                };
                if len == PACKET_LEN {
                    let sent = u64::from_be_bytes(
                        buffer[HEADER_LEN..HEADER_LEN + 8]
                            .try_into()
                            .expect("8 bytes"),
                    );
                    let now = epoch.elapsed().as_nanos() as u64;
                    latencies.push(now.saturating_sub(sent));
                    counters.received.fetch_add(1, Relaxed);
                }
            }
            latencies
        })
    };
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut buffer = [0u8; PACKET_LEN];
    let mut sequence = 0u16;
    while Instant::now() < until {
        tick.tick().await;
        packet(&mut buffer, sequence, ssrc, epoch);
        sequence = sequence.wrapping_add(1);
        if socket.send_to(&buffer, destination).await.is_ok() {
            counters.sent.fetch_add(1, Relaxed);
        }
    }
    let latencies = receiver.await.expect("receiver task");
    counters
        .latencies
        .lock()
        .expect("latency lock")
        .extend(latencies);
}

/// What the paced phones sent and received.
#[derive(Default)]
struct PacedCounters {
    sent: AtomicU64,
    received: AtomicU64,
    latencies: std::sync::Mutex<Vec<u64>>,
}

fn paced_load(_: &mut Criterion) {
    // `cargo test --all-targets` runs benches once as tests, without
    // `--bench`: the 10 s load is for `cargo bench` only.
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let n_calls = std::env::var("RELAY_BENCH_CALLS")
        .ok()
        .and_then(|calls| calls.parse().ok())
        .unwrap_or(N_PACED_CALLS);
    let relay = relay_runtime();
    let phones = phones_runtime();
    let calls = bridged_calls(&relay, &phones, n_calls);
    let counters = Arc::new(PacedCounters::default());
    let cpu_before = (threads_cpu_seconds("relay"), threads_cpu_seconds("phones"));
    let epoch = Instant::now();
    let until = epoch + Duration::from_secs(PACED_SECONDS);
    phones.block_on(async {
        let mut tasks = Vec::new();
        for (index, call) in calls.iter().enumerate() {
            // Spread the calls over the 20 ms period, as real calls are.
            let offset = Duration::from_micros((index as u64 * 20_000) / n_calls as u64);
            for (socket, destination, ssrc) in [
                (&call.caller, call.caller_facing, 2 * index as u32),
                (&call.agent, call.agent_facing, 2 * index as u32 + 1),
            ] {
                let (socket, counters) = (Arc::clone(socket), Arc::clone(&counters));
                tasks.push(tokio::spawn(async move {
                    tokio::time::sleep(offset).await;
                    phone(socket, destination, ssrc, epoch, until, counters).await;
                }));
            }
        }
        for task in tasks {
            task.await.expect("phone task");
        }
    });
    let wall = epoch.elapsed().as_secs_f64();
    let relay_cpu = threads_cpu_seconds("relay") - cpu_before.0;
    let phones_cpu = threads_cpu_seconds("phones") - cpu_before.1;
    let stats = end_calls(&relay, calls);
    let relayed: u64 = stats
        .iter()
        .map(|stats| stats.from_caller.relayed + stats.from_agent.relayed)
        .sum();
    let send_failed: u64 = stats
        .iter()
        .map(|stats| stats.from_caller.send_failed + stats.from_agent.send_failed)
        .sum();
    let mut latency = LatencyHistogramSnapshot::default();
    for stats in &stats {
        latency.merge(&stats.relay_latency);
    }
    let sent = counters.sent.load(Relaxed);
    let received = counters.received.load(Relaxed);
    let mut latencies = std::mem::take(&mut *counters.latencies.lock().expect("latency lock"));
    latencies.sort_unstable();
    let quantile = |q: f64| {
        let index = ((q * latencies.len() as f64) as usize).min(latencies.len().saturating_sub(1));
        Duration::from_nanos(latencies.get(index).copied().unwrap_or(0))
    };
    println!(
        "relay/paced: {n_calls} calls x 2 directions x 50 packets/s for {PACED_SECONDS} s: \
         sent {sent}, relayed {relayed}, received {received}, lost {}, relay send failures {send_failed}",
        sent.saturating_sub(received)
    );
    println!(
        "relay/paced: relay added latency (recv -> send, all packets) {}",
        describe(&latency.summary())
    );
    println!(
        "relay/paced: end to end phone -> relay -> phone p50 {:?} p99 {:?} p99.9 {:?} max {:?}",
        quantile(0.5),
        quantile(0.99),
        quantile(0.999),
        latencies
            .last()
            .map(|&nanos| Duration::from_nanos(nanos))
            .unwrap_or_default()
    );
    println!(
        "relay/paced: relay thread {relay_cpu:.2} cpu-s over {wall:.2} s = {:.2} cores, \
         {:.1} us cpu per relayed packet, {:.0} relayed packets/s; phones {phones_cpu:.2} cpu-s",
        relay_cpu / wall,
        relay_cpu * 1e6 / relayed.max(1) as f64,
        relayed as f64 / wall
    );
}

fn describe(latency: &LatencySummary) -> String {
    format!(
        "n {} mean {:?} p50 {:?} p90 {:?} p99 {:?} p99.9 {:?} max {:?}",
        latency.count,
        latency.mean,
        latency.p50,
        latency.p90,
        latency.p99,
        latency.p999,
        latency.max
    )
}

criterion_group!(benches, burst_throughput, paced_load);
criterion_main!(benches);
