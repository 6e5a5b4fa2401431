//! How long the report endpoints take on a store of 1,000,000 sessions
//! (docs/reports.md; figures in BENCHMARKS.md).
//!
//! ```text
//! cargo bench -p gateway --bench reports
//! REPORT_SESSIONS=200000 REPORT_DAYS=2 cargo bench -p gateway --bench reports
//! ```
//!
//! The first run writes a SQLite store under `target/bench-reports/`:
//! `REPORT_SESSIONS` contacts (default 1,000,000) spread evenly over
//! `REPORT_DAYS` days (default 10, so 100,000 a day), 200 agents in three
//! groups, four channels, 85 % answered, 12 % abandoned, 3 % overflowing
//! from a first step, each answered contact with its two agent-log entries.
//! Later runs reuse it. Then the real server starts on it and each report
//! of one full day (and of a week) is fetched over HTTP on loopback,
//! `REPORT_RUNS` times (default 5); the bench prints min, median and max
//! time to the last byte.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use engine::Millis;
use engine::agent::{Agent, Capacity, Role as AgentRole};
use engine::channel::Channel;
use engine::group::SkillGroup;
use engine::ids::{AgentId, CustomerId, GroupId, SessionId};
use engine::session::{RouteStep, Session, SessionState, SessionTimes};
use engine::sla::AgentActivity;
use engine::sla::report::{AgentLogEntry, AgentLogKind};
use gateway::auth::{Claims, Role, unix_now};
use gateway::{Config, Server};
use store::{SqliteStore, Store, WriteOp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DAY: Millis = 24 * 60 * 60 * 1000;
/// 2026-11-01T00:00:00Z: the first day of the generated history.
const FIRST_DAY: Millis = 1_793_491_200_000;
const GROUPS: [&str; 3] = ["gold_service", "phone_support", "default"];
const CHANNELS: [Channel; 4] = [Channel::Web, Channel::App, Channel::Wechat, Channel::Phone];
const N_AGENTS: u32 = 200;
const BATCH: usize = 5_000;
const SECRET: &str = "bench-reports-secret-0123456789abcdef";

fn env_number(name: &str, default: u64) -> Result<u64> {
    match std::env::var(name) {
        Ok(text) => text
            .parse()
            .with_context(|| format!("{name}={text:?}: expected a whole number")),
        Err(_) => Ok(default),
    }
}

fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; `cargo test` runs the bench once in
    // test mode (no arguments): a small store in a temporary directory,
    // so the suite checks that it works without spending minutes on it.
    let benching = std::env::args().any(|arg| arg == "--bench");
    let (n_sessions, n_days, runs) = match benching {
        true => (
            env_number("REPORT_SESSIONS", 1_000_000)?,
            env_number("REPORT_DAYS", 10)?.max(1),
            env_number("REPORT_RUNS", 5)?.max(1) as usize,
        ),
        false => (3_000, 2, 1),
    };
    let scratch = tempfile::tempdir()?;
    let dir = match benching {
        true => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../target/bench-reports")
            .join(format!("{n_sessions}-{n_days}")),
        false => scratch.path().join("store"),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        fill(&dir, n_sessions, n_days).await?;
        measure(&dir, n_sessions, n_days, runs).await
    })
}

/// xorshift64*: the same history on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

async fn fill(dir: &Path, n_sessions: u64, n_days: u64) -> Result<()> {
    let done = dir.join("filled");
    if done.exists() {
        println!("reusing {}", dir.display());
        return Ok(());
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir)?;
    let store = SqliteStore::open(dir.join("switchboard.db"))?;
    let groups: Vec<SkillGroup> = GROUPS
        .iter()
        .map(|id| SkillGroup::new(*id, id.replace('_', " ")))
        .collect();
    let agents: Vec<Agent> = (0..N_AGENTS)
        .map(|i| Agent {
            id: agent_id(i),
            display_name: format!("Agent {i}"),
            role: AgentRole::Expert,
            skills: Default::default(),
            groups: vec![GroupId::new(GROUPS[(i % 3) as usize])],
            languages: vec!["zh-CN".into()],
            capacity: Capacity::default(),
            sip: None,
        })
        .collect();
    let mut ops: Vec<WriteOp> = groups.into_iter().map(WriteOp::PutGroup).collect();
    ops.extend(agents.into_iter().map(WriteOp::PutAgent));
    store.write(&ops).await?;

    let started = Instant::now();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let spacing = (n_days as Millis * DAY) / n_sessions.max(1) as Millis;
    let mut batch = Vec::with_capacity(BATCH * 3);
    for i in 0..n_sessions {
        let queued = FIRST_DAY + i as Millis * spacing + rng.below(spacing.max(1) as u64) as Millis;
        batch.extend(contact(&mut rng, i, queued));
        if batch.len() >= BATCH * 3 || i + 1 == n_sessions {
            store.write(&batch).await?;
            batch.clear();
            if (i + 1) % 100_000 == 0 || i + 1 == n_sessions {
                println!(
                    "wrote {} of {n_sessions} sessions ({:.0} s)",
                    i + 1,
                    started.elapsed().as_secs_f64()
                );
            }
        }
    }
    store.close().await?;
    std::fs::write(&done, b"")?;
    Ok(())
}

fn agent_id(i: u32) -> AgentId {
    AgentId::new(format!("agent-{i}"))
}

/// One contact queued at `queued`, and its agent's two log entries when
/// it was answered.
fn contact(rng: &mut Rng, i: u64, queued: Millis) -> Vec<WriteOp> {
    let group_idx = rng.below(3) as u32;
    let channel = CHANNELS[rng.below(4) as usize].clone();
    let mut session = Session::new(
        SessionId(i + 1),
        CustomerId::new(format!("bench-{}", i % 50_000)),
        channel,
        queued - 200,
    );
    let group = GroupId::new(GROUPS[group_idx as usize]);
    session.group = Some(group.clone());
    session.sla_group = Some(group.clone());
    let overflowed = rng.below(100) < 3;
    session.route = if overflowed {
        vec![
            RouteStep {
                rule: "vip".into(),
                step: 0,
                group: GroupId::new("gold_service"),
            },
            RouteStep {
                rule: "vip".into(),
                step: 1,
                group: group.clone(),
            },
        ]
    } else {
        vec![RouteStep {
            rule: "everyone_else".into(),
            step: 0,
            group: group.clone(),
        }]
    };
    let outcome = rng.below(100);
    let mut ops = Vec::with_capacity(3);
    if outcome < 85 {
        let wait = rng.below(60_000) as Millis;
        let handle = 60_000 + rng.below(600_000) as Millis;
        let agent = agent_id(group_idx + 3 * rng.below(u64::from(N_AGENTS / 3)) as u32);
        session.state = SessionState::Closed;
        session.agent = Some(agent.clone());
        session.times = SessionTimes {
            queued: Some(queued),
            offered: Some(queued + wait / 2),
            answered: Some(queued + wait),
            first_response: Some(queued + wait + rng.below(30_000) as Millis),
            wrap_up: Some(queued + wait + handle),
            closed: Some(queued + wait + handle),
            ..session.times
        };
        for (at, activity, id) in [
            (queued + wait, AgentActivity::OnContact, 2 * i),
            (
                queued + wait + handle,
                AgentActivity::AvailableIdle,
                2 * i + 1,
            ),
        ] {
            ops.push(WriteOp::PutAgentLog(AgentLogEntry {
                agent: agent.clone(),
                at,
                id,
                kind: AgentLogKind::Activity { activity },
            }));
        }
    } else {
        session.state = SessionState::Abandoned;
        session.times.queued = Some(queued);
        session.times.closed = Some(queued + rng.below(120_000) as Millis);
    }
    ops.push(WriteOp::PutSession(session));
    ops
}

/// Where the time goes: reading one day's sessions from the store page by
/// page, and the interval report's arithmetic over them, apart.
async fn split(dir: &Path, day: Millis) -> Result<()> {
    let store = SqliteStore::open(dir.join("switchboard.db"))?;
    let groups = store.list_groups().await?;
    let window = engine::sla::report::ReportWindow::new(day, day + DAY, 15)?;
    let started = Instant::now();
    let mut sessions = Vec::new();
    let mut after = None;
    loop {
        let page = store.sessions_queued(day, day + DAY, after, 5_000).await?;
        let Some(last) = page.last() else { break };
        after = last.times.queued.map(|queued| (queued, last.id));
        let full = page.len() == 5_000;
        sessions.extend(page);
        if !full {
            break;
        }
    }
    let read = started.elapsed();
    let started = Instant::now();
    let mut builder = engine::sla::report::IntervalReportBuilder::new(window, &groups);
    for session in &sessions {
        builder.add(session);
    }
    let report = builder.finish();
    let built = started.elapsed();
    println!(
        "one day's {} sessions: store read {:.1} ms, interval report (15 min, {} rows) {:.1} ms",
        sessions.len(),
        read.as_secs_f64() * 1000.0,
        report.rows.len(),
        built.as_secs_f64() * 1000.0
    );
    store.close().await?;
    Ok(())
}

async fn measure(dir: &Path, n_sessions: u64, n_days: u64, runs: usize) -> Result<()> {
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".parse()?;
    config.server.admin_listen = "127.0.0.1:0".parse()?;
    config.store.data_dir = dir.to_owned();
    config.auth.secret = SECRET.into();
    // The busiest full day is any day but the first and last partial ones.
    let day = FIRST_DAY + (n_days as Millis / 2) * DAY;
    split(dir, day).await?;
    let server = Server::start(config).await?;
    // Let the start-up (an actor per agent) settle before timing.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let token = server.state.signer.mint(&Claims {
        sub: "bench".into(),
        role: Role::Admin,
        exp: unix_now() + 3600,
    });
    let one_day = format!("from={day}&to={}", day + DAY);
    let week = format!(
        "from={}&to={}",
        FIRST_DAY,
        FIRST_DAY + 7.min(n_days as Millis) * DAY
    );
    println!(
        "{n_sessions} sessions over {n_days} days ({} a day); {runs} runs each",
        n_sessions / n_days
    );
    println!(
        "{:<58} {:>9} {:>9} {:>9} {:>10}",
        "report", "min ms", "median ms", "max ms", "bytes"
    );
    let cases = [
        format!("/api/v1/reports/intervals?{one_day}&interval=15"),
        format!("/api/v1/reports/intervals?{one_day}&interval=30"),
        format!("/api/v1/reports/intervals?{one_day}&interval=60"),
        format!("/api/v1/reports/intervals?{one_day}&interval=15&format=csv"),
        format!("/api/v1/reports/agents?{one_day}"),
        format!("/api/v1/reports/routes?{one_day}"),
        format!("/api/v1/reports/intervals?{week}&interval=60"),
    ];
    for path in &cases {
        let mut times = Vec::with_capacity(runs);
        let mut bytes = 0;
        for _ in 0..runs {
            let started = Instant::now();
            bytes = get(server.addr, path, &token).await?;
            times.push(started.elapsed());
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let label = path
            .trim_start_matches("/api/v1/reports/")
            .replace(&one_day, "1 day")
            .replace(&week, "7 days");
        println!(
            "{label:<58} {:>9.1} {:>9.1} {:>9.1} {bytes:>10}",
            ms(times[0]),
            ms(times[times.len() / 2]),
            ms(times[times.len() - 1])
        );
    }
    server.shutdown().await?;
    Ok(())
}

/// `GET path` over a new connection; the body's length once all of it came.
async fn get(addr: std::net::SocketAddr, path: &str, token: &str) -> Result<usize> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        bail!("{path}: no HTTP response");
    };
    if !head.starts_with("HTTP/1.1 200") {
        bail!("{path}: {}", head.lines().next().unwrap_or_default());
    }
    Ok(body.len())
}
