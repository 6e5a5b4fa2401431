//! The browser as the agent's phone (issue 21): a `BrowserLeg` against a
//! WebRTC peer playing the browser (str0m, ICE + DTLS-SRTP + PCMU, over
//! loopback), with a UDP socket playing the call's media task.
//!
//! 1. **Answer to first audio**: from the browser's offer being answered to
//!    ICE and DTLS up, to the first audio packet at the browser and at the
//!    call's side (each side sends from the start; what comes before the
//!    connection is dropped).
//! 2. **Added latency of the bridge**: a packet sent by the call's side
//!    (its send time in the payload) until the browser's peer has it
//!    decrypted — through the leg's loopback hop, str0m on both sides and
//!    the kernel.
//! 3. **Concurrent browser calls per core**: `BROWSER_BENCH_LEGS` legs
//!    (default 200), each side sending 50 packets/s, for 10 s; the legs'
//!    tasks run on one thread ("legs") whose CPU time is measured, the peers
//!    and the call's side on another ("peers").
//!
//! `cargo bench -p voice --bench browser`
//!
//! Under `cargo test` (no `--bench`) it runs two legs for one second.

#[path = "../tests/webrtc_peer/mod.rs"]
mod webrtc_peer;

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::threads_cpu_seconds;
use tokio::net::UdpSocket;
use tokio::runtime::Runtime;
use voice::media::rtp::{HEADER_LEN, RtpHeader, RtpPacket};
use voice::media::{Codec, MediaFormat, RtpSocket};
use voice::webrtc::{Answered, BrowserEvent, BrowserLeg, BrowserLegSetup, CONNECT_TIMEOUT};
use webrtc_peer::{Seen, TestBrowser, browser};

const PCMU: MediaFormat = MediaFormat {
    codec: Codec::Pcmu,
    payload_type: 0,
    telephone_event: None,
};

fn runtime(name: &str) -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("runtime")
}

/// One leg under load: the leg, its browser peer, the call's side.
struct BenchLeg {
    leg: BrowserLeg,
    browser: TestBrowser,
    media: Arc<UdpSocket>,
    answered_at: Instant,
    connected_at: Option<Instant>,
}

/// Sets up one leg: the leg's task on `legs`, the peer and the call's
/// side on `peers`.
fn leg(legs: &Runtime, peers: &Runtime, epoch: Instant) -> BenchLeg {
    let media = peers
        .block_on(UdpSocket::bind("127.0.0.1:0"))
        .expect("media socket");
    let media = Arc::new(media);
    let (rtc, mid, offer, pending) = browser(true, false);
    let answered_at = Instant::now();
    let Answered {
        leg,
        answer,
        mut events,
    } = {
        let _legs = legs.enter();
        let browser_socket = RtpSocket::bind("127.0.0.1:0".parse().unwrap()).expect("port");
        let advertised = browser_socket.local_addr();
        BrowserLeg::answer(
            &offer.to_sdp_string(),
            PCMU,
            BrowserLegSetup {
                browser: browser_socket,
                advertised,
                media_peer: media.local_addr().unwrap(),
                connect_timeout: CONNECT_TIMEOUT,
            },
        )
        .expect("answered")
    };
    let (browser, candidate) =
        peers.block_on(TestBrowser::connect(rtc, mid, pending, &answer, 0x55));
    leg.add_remote_candidate(&candidate).expect("candidate");
    // The call's side speaks from the start: its send time in the payload.
    let media_out = Arc::clone(&media);
    let to = leg.media_addr();
    peers.spawn(speak(media_out, to, epoch));
    let connected = peers
        .block_on(async { tokio::time::timeout(Duration::from_secs(10), events.recv()).await });
    let connected_at = matches!(connected, Ok(Some(BrowserEvent::Connected))).then(Instant::now);
    BenchLeg {
        leg,
        browser,
        media,
        answered_at,
        connected_at,
    }
}

/// The call's side: 50 PCMU packets a second for at most 60 s, each with
/// its send time (ns since `epoch`) in the first 8 bytes of the payload.
async fn speak(socket: Arc<UdpSocket>, to: SocketAddr, epoch: Instant) {
    let mut every = tokio::time::interval(Duration::from_millis(20));
    for sequence in 0..3_000u16 {
        every.tick().await;
        let mut packet = vec![0u8; HEADER_LEN + 160];
        RtpHeader {
            marker: sequence == 0,
            payload_type: 0,
            sequence,
            timestamp: u32::from(sequence) * 160,
            ssrc: 0xBE7C,
        }
        .write(&mut packet);
        let sent = epoch.elapsed().as_nanos() as u64;
        packet[HEADER_LEN..HEADER_LEN + 8].copy_from_slice(&sent.to_be_bytes());
        if socket.send_to(&packet, to).await.is_err() {
            return;
        }
    }
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index]
}

fn summary(name: &str, mut values: Vec<f64>) {
    values.sort_by(f64::total_cmp);
    println!(
        "browser/{name}: n {} p50 {:.3} ms p90 {:.3} ms p99 {:.3} ms max {:.3} ms",
        values.len(),
        quantile(&values, 0.5),
        quantile(&values, 0.9),
        quantile(&values, 0.99),
        values.last().copied().unwrap_or(f64::NAN),
    );
}

fn main() {
    let full = std::env::args().any(|arg| arg == "--bench");
    let n_legs: usize = match full {
        true => std::env::var("BROWSER_BENCH_LEGS")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(200),
        false => 2,
    };
    let seconds = if full { 10 } else { 1 };
    let legs_rt = runtime("legs");
    let peers_rt = runtime("peers");
    let epoch = Instant::now();

    // 1. Answer to first audio, per leg as the legs are set up.
    let mut legs = Vec::with_capacity(n_legs);
    let mut to_connected = Vec::new();
    let mut to_browser_audio = Vec::new();
    let mut to_call_audio = Vec::new();
    for _ in 0..n_legs {
        let mut bench = leg(&legs_rt, &peers_rt, epoch);
        let answered_at = bench.answered_at;
        if let Some(connected_at) = bench.connected_at {
            to_connected.push((connected_at - answered_at).as_secs_f64() * 1e3);
        }
        let first_at_browser = peers_rt.block_on(async {
            loop {
                match tokio::time::timeout(Duration::from_secs(5), bench.browser.seen.recv()).await
                {
                    Ok(Some(Seen::Audio(_))) => return Some(Instant::now()),
                    Ok(Some(Seen::Connected)) => continue,
                    _ => return None,
                }
            }
        });
        if let Some(at) = first_at_browser {
            to_browser_audio.push((at - answered_at).as_secs_f64() * 1e3);
        }
        let media = Arc::clone(&bench.media);
        let first_at_call = peers_rt.block_on(async move {
            let mut buffer = [0u8; 2048];
            tokio::time::timeout(Duration::from_secs(5), media.recv_from(&mut buffer))
                .await
                .ok()
                .map(|_| Instant::now())
        });
        if let Some(at) = first_at_call {
            to_call_audio.push((at - answered_at).as_secs_f64() * 1e3);
        }
        legs.push(bench);
    }
    summary("answer_to_connected", to_connected);
    summary("answer_to_first_audio_at_browser", to_browser_audio);
    summary("answer_to_first_audio_at_call", to_call_audio);

    // 2 and 3: every leg carrying audio both ways for `seconds`; the
    // browser side's arrivals timed against the send time in the payload.
    let cpu_before = (threads_cpu_seconds("legs"), threads_cpu_seconds("peers"));
    let started = Instant::now();
    let latencies = peers_rt.block_on(async {
        let mut latencies = Vec::new();
        let until = tokio::time::Instant::now() + Duration::from_secs(seconds);
        let mut drains = Vec::new();
        for bench in &mut legs {
            let seen = std::mem::replace(
                &mut bench.browser.seen,
                tokio::sync::mpsc::unbounded_channel().1,
            );
            let media = Arc::clone(&bench.media);
            drains.push(tokio::spawn(async move {
                let mut seen = seen;
                let mut latencies = Vec::new();
                let mut received = 0u64;
                let mut buffer = [0u8; 2048];
                // What queued while the other legs were set up is not
                // this window's: only fresh packets are timed and counted.
                while seen.try_recv().is_ok() {}
                while media.try_recv_from(&mut buffer).is_ok() {}
                loop {
                    tokio::select! {
                        frame = seen.recv() => match frame {
                            Some(Seen::Audio(payload)) if payload.len() >= 8 => {
                                let sent = u64::from_be_bytes(payload[..8].try_into().unwrap());
                                let now = epoch.elapsed().as_nanos() as u64;
                                latencies.push(now.saturating_sub(sent) as f64 / 1e6);
                            }
                            Some(_) => {}
                            None => break,
                        },
                        got = media.recv_from(&mut buffer) => {
                            if let Ok((len, _)) = got && RtpPacket::parse(&buffer[..len]).is_ok() {
                                received += 1;
                            }
                        }
                        () = tokio::time::sleep_until(until) => break,
                    }
                }
                (latencies, received)
            }));
        }
        let mut at_call = 0u64;
        for drain in drains {
            let (leg_latencies, received) = drain.await.unwrap();
            latencies.extend(leg_latencies);
            at_call += received;
        }
        (latencies, at_call)
    });
    let wall = started.elapsed().as_secs_f64();
    let legs_cpu = threads_cpu_seconds("legs") - cpu_before.0;
    let peers_cpu = threads_cpu_seconds("peers") - cpu_before.1;
    let (latencies, at_call) = latencies;
    let at_browser = latencies.len();
    summary("call_to_browser_latency", latencies);
    let to_browser: u64 = legs.iter().map(|bench| bench.leg.stats().to_browser).sum();
    let from_browser: u64 = legs
        .iter()
        .map(|bench| bench.leg.stats().from_browser)
        .sum();
    let cores = legs_cpu / wall;
    println!(
        "browser/load: {n_legs} legs for {wall:.1} s; packets at the browser {at_browser}, at the call {at_call} \
         (leg counters: to browser {to_browser}, from browser {from_browser}); legs thread {legs_cpu:.2} cpu-s = \
         {cores:.3} cores = {:.0} legs per core at 50+50 packets/s; peers {peers_cpu:.2} cpu-s",
        n_legs as f64 / cores.max(1e-9),
    );
    assert!(at_browser > 0 && at_call > 0, "audio flowed both ways");
    for bench in legs {
        bench.browser.task.abort();
        legs_rt.block_on(bench.leg.close());
    }
}
