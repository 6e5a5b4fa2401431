//! The coordinator (`loadgen run`): starts the server under test, splits the
//! scenario over generator processes and source addresses, starts them
//! together, stops their agents together once every process's customers are
//! done, prints a progress line (see [`crate::progress`]), samples the
//! server's memory, and merges everything into a [`Report`]. In a
//! connection storm it takes the memory while every process's customers
//! are in, then releases them together.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use crate::report::{Memory, NodeMemory, Point, Report, ServiceLevel};
use crate::scenario::{Kind, Params};
use crate::stats::{Percentiles, Snapshot, add_buckets, count, hist, new_histogram};
use crate::target::{Launch, Server, agent_id};
use crate::worker::{Line, WorkerPlan, day_pool};

/// One run of one scenario against one target.
pub struct RunOptions {
    pub kind: Kind,
    pub params: Params,
    pub launch: Launch,
    /// Where the server's data directory goes (removed after the run).
    pub work_dir: PathBuf,
    /// The command line, for the report.
    pub command: String,
    /// Print the progress line.
    pub progress: bool,
}

/// How many processes a run needs: what was asked, or more when the
/// connections do not fit (one process may hold 20,000 open files here).
pub fn n_processes(kind: Kind, params: &Params) -> u32 {
    let connections = match kind {
        Kind::IdleSessions => 0,
        Kind::ContactCenterDay | Kind::PromotionSpike => {
            u64::from(day_pool(params, kind, 1.0)) + u64::from(params.agents)
        }
        _ => u64::from(params.customers) + u64::from(params.agents),
    };
    let needed = connections.div_ceil(u64::from(params.connections_per_process)) as u32;
    // Each process connects to one node: as many per node, for an even spread.
    params
        .processes
        .max(needed)
        .max(1)
        .next_multiple_of(params.nodes.max(1))
}

/// The 127.0.0.x source addresses of a run.
pub fn sources(params: &Params) -> Vec<IpAddr> {
    (1..=params.sources)
        .map(|host| IpAddr::V4(Ipv4Addr::new(127, 0, 0, host as u8)))
        .collect()
}

/// Splits `total` into `parts` nearly equal shares.
pub fn split(total: u64, parts: u32) -> Vec<u64> {
    let parts = u64::from(parts.max(1));
    (0..parts)
        .map(|idx| total / parts + u64::from(idx < total % parts))
        .collect()
}

/// Each node's memory once every customer is in (a storm over a cluster):
/// the customers connected to it (processes connect to nodes in turn) and
/// the sessions it runs (`switchboard_sessions{state="open"}` from its
/// `/metrics`: placement puts a customer's session on the node of its id,
/// not on the node it connected to).
async fn node_memory(
    server: &Server,
    rss_go: &[Option<u64>],
    all_in: &[Option<i64>],
) -> Vec<NodeMemory> {
    let rss_now = server.rss_per_node_kib();
    let n_nodes = server.nodes.len();
    let mut nodes = Vec::new();
    for (idx, node) in server.nodes.iter().enumerate() {
        let customers: i64 = all_in
            .iter()
            .enumerate()
            .filter(|(worker, _)| worker % n_nodes == idx)
            .filter_map(|(_, connected)| *connected)
            .sum();
        let sessions = match node.admin {
            Some(admin) => open_sessions(admin).await,
            None => None,
        };
        let (go, at) = (rss_go.get(idx).copied().flatten(), rss_now[idx]);
        let kib_per_customer = match (go, at) {
            (Some(go), Some(at)) if customers > 0 => {
                Some((at as f64 - go as f64) / customers as f64)
            }
            _ => None,
        };
        nodes.push(NodeMemory {
            node: idx as u32 + 1,
            rss_go_kib: go,
            rss_at_sessions_kib: at,
            customers,
            sessions,
            kib_per_customer,
        });
    }
    nodes
}

/// `switchboard_sessions{state="open"}` of the node whose admin listener is `admin`.
async fn open_sessions(admin: std::net::SocketAddr) -> Option<i64> {
    let text = reqwest::get(format!("http://{admin}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .filter(|line| line.starts_with("switchboard_sessions{") && line.contains("state=\"open\""))
        .find_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|value| value as i64)
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
}

/// Runs the scenario once against one target.
pub async fn run(options: &RunOptions) -> Result<Report> {
    let phone = options.kind.is_phone();
    if options.kind.is_channel() {
        let stats = crate::stats::Stats::default();
        let (sink_url, sink) = crate::channel::start_sink(&stats).await?;
        let server = Server::start(
            &options.launch,
            &options.params,
            false,
            Some(&sink_url),
            &options.work_dir,
        )
        .await?;
        let result = crate::channel::drive(options, &server, stats, sink).await;
        let stopped = server.stop().await;
        let report = result?;
        stopped?;
        return Ok(report);
    }
    let server = Server::start(
        &options.launch,
        &options.params,
        phone,
        None,
        &options.work_dir,
    )
    .await?;
    let result = if phone {
        crate::phone::drive(options, &server).await
    } else {
        drive(options, &server).await
    };
    // Stop the server even when the run failed; its error is the one to show.
    let stopped = server.stop().await;
    let report = result?;
    stopped?;
    Ok(report)
}

async fn drive(options: &RunOptions, server: &Server) -> Result<Report> {
    let params = &options.params;
    let kind = options.kind;
    let started_at = crate::now_rfc3339();
    let rss_start = server.rss_kib();
    let n_workers = n_processes(kind, params);
    let sources = sources(params);
    let customers = split(u64::from(params.customers), n_workers);
    let sessions = split(params.sessions, n_workers);
    let admin_token = server.token("loadgen", "admin");
    let (lines_tx, mut lines) = mpsc::unbounded_channel::<(usize, Option<Line>)>();
    let mut workers = Vec::new();
    let mut first_session = 0;
    for index in 0..n_workers {
        let agents = (0..params.agents)
            .filter(|agent| agent % n_workers == index)
            .map(|agent| (agent_id(agent), server.token(&agent_id(agent), "agent")))
            .collect();
        let share = 1.0 / f64::from(n_workers);
        let plan = WorkerPlan {
            index,
            kind,
            params: params.clone(),
            addr: server.nodes[index as usize % server.nodes.len()].addr,
            nodes: server.nodes.iter().map(|node| node.addr).collect(),
            sources: sources.clone(),
            customers: match kind {
                Kind::ContactCenterDay | Kind::PromotionSpike => day_pool(params, kind, share),
                _ => customers[index as usize] as u32,
            },
            customers_total: params.customers,
            agents,
            arrival_share: share,
            first_session,
            sessions: sessions[index as usize],
            admin_token: admin_token.clone(),
        };
        first_session += sessions[index as usize];
        workers.push(spawn_worker(&plan, index as usize, lines_tx.clone()).await?);
    }
    drop(lines_tx);

    let mut progress_line = crate::progress::ProgressLine::to_stderr();
    // Set-up: wait for every worker's `ready`.
    let mut latest: Vec<BTreeMap<String, i64>> = vec![BTreeMap::new(); workers.len()];
    let mut ready = 0;
    let setup_started = Instant::now();
    while ready < workers.len() {
        let (idx, line) = tokio::time::timeout(Duration::from_secs(900), lines.recv())
            .await
            .context("set-up took over 15 minutes")?
            .context("every worker exited during set-up")?;
        match line {
            Some(Line::Ready) => ready += 1,
            Some(Line::Progress(progress)) => {
                latest[idx] = progress.counters;
                if options.progress {
                    let connected: i64 =
                        latest.iter().filter_map(|c| c.get(count::CONNECTED)).sum();
                    progress_line.show(&format!(
                        "setting up {:>4.0}s: {ready}/{} processes ready, {connected} connected",
                        setup_started.elapsed().as_secs_f64(),
                        workers.len()
                    ));
                }
            }
            Some(Line::CustomersDone | Line::AllIn { .. } | Line::Done(_)) => {
                bail!("worker {idx} finished during set-up")
            }
            None => bail!("worker {idx} exited during set-up (see its errors above)"),
        }
    }
    let rss_go = server.rss_kib();
    let rss_go_per_node = server.rss_per_node_kib();
    let mut per_node = Vec::new();
    for worker in &mut workers {
        worker
            .stdin
            .write_all(b"go\n")
            .await
            .context("a worker went away before go")?;
        worker.stdin.flush().await?;
    }
    let go = Instant::now();
    let mut series = Vec::new();
    let mut finals: Vec<Option<Snapshot>> = vec![None; workers.len()];
    let mut customers_done = vec![false; workers.len()];
    let mut interval: BTreeMap<String, hdrhistogram::Histogram<u64>> = BTreeMap::new();
    let mut cumulative_e2e = new_histogram();
    let mut previous: (i64, i64) = (0, 0);
    let mut peak = rss_go;
    let mut at_sessions: (i64, Option<u64>) = (0, None);
    // Connection storm: each process's count when all its customers were in.
    let mut all_in: Vec<Option<i64>> = vec![None; workers.len()];
    let mut release_at: Option<tokio::time::Instant> = None;
    // A run over a cluster may kill its last node under load.
    let mut kill_at = (params.kill_node_at_secs > 0.0)
        .then(|| tokio::time::Instant::now() + Duration::from_secs_f64(params.kill_node_at_secs));
    let mut killed_at_secs: Option<f64> = None;
    // The longest round trip and ack (µs) seen in the seconds after the kill.
    let mut after_kill: (u64, u64) = (0, 0);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let limit =
        Duration::from_secs_f64(params.duration_secs + params.drain_secs + params.hold_secs)
            + Duration::from_secs(3600);
    loop {
        if finals.iter().all(Option::is_some) {
            break;
        }
        tokio::select! {
            _ = tick.tick() => {
                let rss = server.rss_kib();
                peak = peak.max(rss);
                let sum = |name: &str| latest.iter().filter_map(|c| c.get(name)).sum::<i64>();
                let sent = sum(count::CUSTOMER_SENT) + sum(count::AGENT_SENT);
                let received = sum(count::AGENT_RECEIVED) + sum(count::CUSTOMER_RECEIVED);
                let p = |name: &str, q: f64| interval.get(name).filter(|h| !h.is_empty()).map(|h| h.value_at_quantile(q) as f64 / 1000.0);
                let point = Point {
                    t: go.elapsed().as_secs_f64(),
                    connected: sum(count::CONNECTED),
                    sent_per_sec: (sent - previous.0) as f64,
                    received_per_sec: (received - previous.1) as f64,
                    opened: sum(count::OPENED),
                    errors: latest_errors(&latest) as u64,
                    rss_kib: rss,
                    e2e_p50_ms: p(hist::CUSTOMER_TO_AGENT, 0.5),
                    e2e_p99_ms: p(hist::CUSTOMER_TO_AGENT, 0.99),
                    round_trip_p99_ms: p(hist::ROUND_TRIP, 0.99),
                    ack_p99_ms: p(hist::ACK, 0.99),
                };
                previous = (sent, received);
                if let Some(h) = interval.get(hist::CUSTOMER_TO_AGENT) {
                    cumulative_e2e.add(h).ok();
                }
                if let Some(at) = killed_at_secs
                    && go.elapsed().as_secs_f64() <= at + AFTER_KILL_SECS
                {
                    for (name, longest) in [(hist::ROUND_TRIP, &mut after_kill.0), (hist::ACK, &mut after_kill.1)] {
                        if let Some(h) = interval.get(name).filter(|h| !h.is_empty()) {
                            *longest = (*longest).max(h.max());
                        }
                    }
                }
                interval.clear();
                if options.progress {
                    let p99 = if !cumulative_e2e.is_empty() {
                        format!("{:.2} ms", cumulative_e2e.value_at_quantile(0.99) as f64 / 1000.0)
                    } else {
                        "-".into()
                    };
                    progress_line.show(&format!(
                        "{:>5.0}s connected {:>6}  sent/s {:>7.0}  recv/s {:>7.0}  opened {:>7}  errors {:>4}  e2e p99 {p99}  rss {}",
                        point.t, point.connected, point.sent_per_sec, point.received_per_sec, point.opened,
                        latest_errors(&latest), rss.map(|k| format!("{} MiB", k / 1024)).unwrap_or_else(|| "-".into())
                    ));
                }
                series.push(point);
                if go.elapsed() > limit {
                    bail!("the run went {limit:?} past its planned length; stopping");
                }
            }
            _ = tokio::time::sleep_until(release_at.unwrap_or_else(tokio::time::Instant::now)), if release_at.is_some() => {
                // Every process's customers have held for `hold_secs`.
                release_at = None;
                at_sessions = (all_in.iter().flatten().sum(), server.rss_kib());
                if server.nodes.len() > 1 {
                    per_node = node_memory(server, &rss_go_per_node, &all_in).await;
                }
                for worker in &mut workers {
                    // A worker whose customers all failed may have finished
                    // already: its report tells why, not this write.
                    let _ = worker.stdin.write_all(b"release\n").await;
                    let _ = worker.stdin.flush().await;
                }
            }
            _ = tokio::time::sleep_until(kill_at.unwrap_or_else(tokio::time::Instant::now)), if kill_at.is_some() => {
                kill_at = None;
                let last = server.nodes.len() - 1;
                server.kill_node(last)?;
                killed_at_secs = Some(go.elapsed().as_secs_f64());
                if options.progress {
                    progress_line.end();
                    eprintln!(
                        "loadgen: killed node {} (SIGKILL) {:.1} s after go; its clients reconnect to the others",
                        last + 1,
                        go.elapsed().as_secs_f64()
                    );
                }
            }
            line = lines.recv() => {
                let Some((idx, line)) = line else { break };
                match line {
                    Some(Line::Progress(progress)) => {
                        let mut counters = progress.counters;
                        counters.insert("__errors".into(), progress.errors as i64);
                        latest[idx] = counters;
                        for (name, buckets) in progress.interval {
                            add_buckets(interval.entry(name).or_insert_with(new_histogram), &buckets);
                        }
                    }
                    Some(Line::CustomersDone) => {
                        customers_done[idx] = true;
                        if customers_done.iter().all(|done| *done) {
                            stop_agents(&mut workers).await?;
                        }
                    }
                    Some(Line::AllIn { connected }) => {
                        all_in[idx] = Some(connected);
                        if all_in.iter().all(Option::is_some) {
                            release_at = Some(tokio::time::Instant::now() + Duration::from_secs_f64(params.hold_secs));
                        }
                    }
                    Some(Line::Done(snapshot)) => finals[idx] = Some(snapshot),
                    Some(Line::Ready) => {}
                    None => {
                        if finals[idx].is_none() {
                            bail!("worker {idx} exited before reporting (see its errors above)");
                        }
                    }
                }
            }
        }
    }
    if options.progress {
        progress_line.end();
    }
    let measured_secs = go.elapsed().as_secs_f64();
    let rss_end = server.rss_kib();
    for Worker { mut child, stdin } in workers {
        drop(stdin); // nothing more to say: end of input
        // Done was reported; the exit status adds nothing.
        let _ = child.wait().await;
    }
    let snapshots: Vec<Snapshot> = finals.into_iter().flatten().collect();
    let merged = merge(&snapshots);
    let mut report = Report {
        scenario: kind,
        target: server.kind,
        params: params.clone(),
        started_at,
        machine: machine(),
        command: options.command.clone(),
        processes: n_workers,
        sources: params.sources,
        measured_secs,
        latency: merged.0,
        counters: merged.1,
        errors: merged.2,
        durable_messages_per_sec: 0.0,
        checks: Vec::new(),
        memory: Memory {
            rss_start_kib: rss_start,
            rss_go_kib: rss_go,
            rss_peak_kib: peak.max(rss_end),
            rss_end_kib: rss_end,
            sessions: at_sessions.0,
            rss_at_sessions_kib: at_sessions.1,
            kib_per_session: None,
            nodes: per_node,
        },
        service_level: None,
        series,
        passed: false,
        figures: BTreeMap::new(),
    };
    let durable = report.counter(count::CUSTOMER_ACKED) + report.counter(count::AGENT_ACKED);
    // Steady chat sends for `duration_secs`; other scenarios run as long as they take.
    let sending_secs = match kind {
        Kind::SteadyChat | Kind::Soak => params.duration_secs,
        _ => measured_secs,
    };
    report.durable_messages_per_sec = durable as f64 / sending_secs;
    if matches!(kind, Kind::ConnectionStorm | Kind::IdleSessions) {
        if kind == Kind::IdleSessions {
            // Every session is open at the end; take the count from the finals.
            report.memory.sessions = report.counter(count::OPENED);
            report.memory.rss_at_sessions_kib = rss_end;
        }
        if let (Some(at), Some(base)) = (report.memory.rss_at_sessions_kib, rss_go)
            && report.memory.sessions > 0
        {
            report.memory.kib_per_session =
                Some((at as f64 - base as f64) / report.memory.sessions as f64);
        }
    }
    if matches!(kind, Kind::ContactCenterDay | Kind::PromotionSpike) {
        let answered = report.counter(count::ANSWERED);
        let within = report.counter(count::ANSWERED_IN_SL);
        let abandoned = report.counter(count::ABANDONED);
        let offered = answered + abandoned;
        report.service_level = Some(ServiceLevel {
            threshold_secs: params.sl_threshold_secs,
            answered,
            answered_within_threshold: within,
            abandoned,
            level: if offered > 0 {
                within as f64 / offered as f64
            } else {
                0.0
            },
        });
    }
    if let Some(at) = killed_at_secs {
        report
            .figures
            .insert("node_killed_at_secs".into(), (at * 10.0).round() / 10.0);
        report.figures.insert(
            "reconnected_to_another_node".into(),
            report.counter(count::RECONNECTED) as f64,
        );
        // The longest round trip and ack (from the message's first send)
        // of what was answered in the 1 s intervals from the kill to 10 s
        // after it, whichever node held the socket or the session; the
        // first interval may hold up to a second from before the kill.
        report.figures.insert(
            "longest_round_trip_ms_after_the_kill".into(),
            after_kill.0 as f64 / 1000.0,
        );
        report.figures.insert(
            "longest_ack_ms_after_the_kill".into(),
            after_kill.1 as f64 / 1000.0,
        );
    }
    report.checks = report.delivery_checks();
    report.passed = report.checks.iter().all(|check| check.ok);
    Ok(report)
}

/// How long after a kill the longest round trip and ack are looked for.
const AFTER_KILL_SECS: f64 = 10.0;

/// Every process's customers have settled: the agents may stop. Not
/// earlier, since an agent of one process may hold sessions of customers
/// that another process drives.
async fn stop_agents(workers: &mut [Worker]) -> Result<()> {
    for worker in workers {
        worker
            .stdin
            .write_all(b"stop\n")
            .await
            .context("a worker went away before stop")?;
        worker.stdin.flush().await?;
    }
    Ok(())
}

fn latest_errors(latest: &[BTreeMap<String, i64>]) -> i64 {
    latest.iter().filter_map(|c| c.get("__errors")).sum()
}

type Merged = (
    BTreeMap<String, Percentiles>,
    BTreeMap<String, i64>,
    BTreeMap<String, u64>,
);

/// Merges the workers' final snapshots.
fn merge(snapshots: &[Snapshot]) -> Merged {
    let mut histograms: BTreeMap<String, hdrhistogram::Histogram<u64>> = BTreeMap::new();
    let mut counters = BTreeMap::new();
    let mut errors = BTreeMap::new();
    for snapshot in snapshots {
        for (name, buckets) in &snapshot.histograms {
            add_buckets(
                histograms.entry(name.clone()).or_insert_with(new_histogram),
                buckets,
            );
        }
        for (name, value) in &snapshot.counters {
            *counters.entry(name.clone()).or_insert(0) += value;
        }
        for (kind, n) in &snapshot.errors {
            *errors.entry(kind.clone()).or_insert(0) += n;
        }
    }
    let latency = hist::ALL
        .iter()
        .filter_map(|name| {
            histograms
                .get(*name)
                .map(|h| (name.to_string(), Percentiles::of(h)))
        })
        .collect();
    (latency, counters, errors)
}

async fn spawn_worker(
    plan: &WorkerPlan,
    idx: usize,
    lines: mpsc::UnboundedSender<(usize, Option<Line>)>,
) -> Result<Worker> {
    let exe = std::env::current_exe().context("no path to loadgen itself")?;
    let mut child = Command::new(exe)
        .arg("worker")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("failed to start a generator process")?;
    let mut stdin = child.stdin.take().context("no stdin")?;
    let mut text = serde_json::to_string(plan)?;
    text.push('\n');
    stdin.write_all(text.as_bytes()).await?;
    stdin.flush().await?;
    let stdout = child.stdout.take().context("no stdout")?;
    tokio::spawn(async move {
        let mut reader = BufReader::new(stdout).lines();
        while let Ok(Some(text)) = reader.next_line().await {
            match serde_json::from_str::<Line>(&text) {
                Ok(line) => {
                    if lines.send((idx, Some(line))).is_err() {
                        return;
                    }
                }
                Err(err) => eprintln!("loadgen: unreadable line from worker {idx}: {err}"),
            }
        }
        // The coordinator may have finished already.
        let _ = lines.send((idx, None));
    });
    Ok(Worker { child, stdin })
}

/// CPU model, cores and kernel, for the report.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown cpu".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
        })
        .map(|kib| format!("{:.0} GiB", kib as f64 / 1024.0 / 1024.0))
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "{model}, {cores} cores, {memory}, Linux {}, load average at start {load}",
        kernel.trim()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up() {
        assert_eq!(split(10, 3), vec![4, 3, 3]);
        assert_eq!(split(2, 4), vec![1, 1, 0, 0]);
        assert_eq!(split(7, 1), vec![7]);
    }

    #[test]
    fn connections_beyond_one_process_need_more_processes() {
        let params = Params {
            customers: 40_000,
            agents: 100,
            processes: 1,
            connections_per_process: 15_000,
            ..Params::default()
        };
        assert_eq!(n_processes(Kind::ConnectionStorm, &params), 3);
        assert_eq!(n_processes(Kind::IdleSessions, &params), 1);
        let sources = sources(&Params {
            sources: 3,
            ..params
        });
        assert_eq!(sources.last().unwrap().to_string(), "127.0.0.3");
    }
}
