//! The result of a run: merged percentiles, counters, delivery checks,
//! memory and the per-second series; the summary table printed at the end;
//! and the JSON and HTML files.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::scenario::{Kind, Params};
use crate::stats::{Percentiles, count};
use crate::target::TargetKind;

/// One second of a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Point {
    /// Seconds since `go`.
    pub t: f64,
    pub connected: i64,
    /// Messages sent per second (customers and agents).
    pub sent_per_sec: f64,
    /// Messages received per second (by agents and customers).
    pub received_per_sec: f64,
    /// Sessions opened so far.
    pub opened: i64,
    pub errors: u64,
    pub rss_kib: Option<u64>,
    /// Customer → agent latency in this second, ms.
    pub e2e_p50_ms: Option<f64>,
    pub e2e_p99_ms: Option<f64>,
    /// Round trip in this second, ms.
    pub round_trip_p99_ms: Option<f64>,
    /// Ack latency in this second, ms.
    pub ack_p99_ms: Option<f64>,
}

/// One delivery check: `got` must equal `expected`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub expected: i64,
    pub got: i64,
    pub ok: bool,
}

impl Check {
    /// `got` against `expected`.
    pub fn new(name: &str, expected: i64, got: i64) -> Check {
        Check {
            name: name.to_string(),
            expected,
            got,
            ok: expected == got,
        }
    }
}

/// The server's memory.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Memory {
    /// Right after start-up.
    pub rss_start_kib: Option<u64>,
    /// At `go` (after set-up: visitors created, agents and answered customers connected).
    pub rss_go_kib: Option<u64>,
    pub rss_peak_kib: Option<u64>,
    pub rss_end_kib: Option<u64>,
    /// What `kib_per_session` divides by: customers in once every
    /// process's were (storm) or opened sessions (idle); 0 for the other
    /// scenarios.
    pub sessions: i64,
    /// RSS at the end of the storm's hold (every customer still in), or at
    /// the end of an idle run; null for the other scenarios.
    pub rss_at_sessions_kib: Option<u64>,
    /// (rss_at_sessions − rss_go) / sessions, for the scenarios that measure it.
    pub kib_per_session: Option<f64>,
    /// A storm over a cluster (`nodes` > 1): each node's share, taken with
    /// `rss_at_sessions_kib`; empty otherwise.
    #[serde(default)]
    pub nodes: Vec<NodeMemory>,
}

/// One node's memory in a storm over a cluster.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NodeMemory {
    /// Its node id (1 …).
    pub node: u32,
    pub rss_go_kib: Option<u64>,
    /// With every customer in.
    pub rss_at_sessions_kib: Option<u64>,
    /// Customers connected to it.
    pub customers: i64,
    /// Sessions it runs (its `switchboard_sessions{state="open"}`).
    pub sessions: Option<i64>,
    /// (rss_at_sessions − rss_go) / customers: a connection plus, on
    /// average, one session (placement spreads sessions as evenly).
    pub kib_per_customer: Option<f64>,
}

/// Service level of a day run, as customers saw it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceLevel {
    pub threshold_secs: f64,
    pub answered: i64,
    pub answered_within_threshold: i64,
    pub abandoned: i64,
    /// answered within threshold / (answered + abandoned).
    pub level: f64,
}

/// Everything one run of one target measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub scenario: Kind,
    pub target: TargetKind,
    pub params: Params,
    pub started_at: String,
    pub machine: String,
    pub command: String,
    pub processes: u32,
    pub sources: u32,
    /// From `go` until every process was done.
    pub measured_secs: f64,
    pub latency: BTreeMap<String, Percentiles>,
    pub counters: BTreeMap<String, i64>,
    pub errors: BTreeMap<String, u64>,
    /// Durable messages (customer and agent, acknowledged) per second of the measured phase.
    pub durable_messages_per_sec: f64,
    pub checks: Vec<Check>,
    pub memory: Memory,
    pub service_level: Option<ServiceLevel>,
    pub series: Vec<Point>,
    pub passed: bool,
    /// Figures of the phone scenarios that are neither latencies nor
    /// counts: achieved rates, the server's CPU (cores), jitter, and the
    /// server's own relay latency from `/metrics`.
    #[serde(default)]
    pub figures: BTreeMap<String, f64>,
}

impl Report {
    /// A counter (0 when never touched).
    pub fn counter(&self, name: &str) -> i64 {
        self.counters.get(name).copied().unwrap_or(0)
    }

    /// The p99 of a histogram in ms, when it has samples.
    pub fn p99_ms(&self, histogram: &str) -> Option<f64> {
        self.latency
            .get(histogram)
            .filter(|p| p.count > 0)
            .map(|p| p.p99_ms)
    }

    /// The delivery checks of this scenario: exact counts, no duplicates, no errors.
    pub fn delivery_checks(&self) -> Vec<Check> {
        let check = Check::new;
        let c = |name| self.counter(name);
        let mut checks = vec![check("errors", 0, self.errors.values().sum::<u64>() as i64)];
        let chat = matches!(
            self.scenario,
            Kind::SteadyChat
                | Kind::Soak
                | Kind::ResumeStorm
                | Kind::ContactCenterDay
                | Kind::PromotionSpike
        );
        if chat {
            checks.push(check(
                "customer messages acked = sent",
                c(count::CUSTOMER_SENT),
                c(count::CUSTOMER_ACKED),
            ));
            checks.push(check("duplicate events", 0, c(count::DUPLICATES)));
            checks.push(check("events skipped by agents", 0, c(count::SKIPPED)));
        }
        match self.scenario {
            Kind::SteadyChat | Kind::Soak | Kind::ResumeStorm => {
                checks.push(check(
                    "received by agents = acked (lost = 0)",
                    c(count::CUSTOMER_ACKED),
                    c(count::AGENT_RECEIVED),
                ));
                checks.push(check(
                    "agent messages acked = sent",
                    c(count::AGENT_SENT),
                    c(count::AGENT_ACKED),
                ));
                checks.push(check(
                    "received by customers = acked (lost = 0)",
                    c(count::AGENT_ACKED),
                    c(count::CUSTOMER_RECEIVED),
                ));
            }
            Kind::ContactCenterDay | Kind::PromotionSpike => {
                checks.push(check(
                    "received by customers = agent messages acked (lost = 0)",
                    c(count::AGENT_ACKED),
                    c(count::CUSTOMER_RECEIVED),
                ));
                checks.push(check(
                    "every arrival answered or abandoned",
                    c(count::ARRIVED),
                    c(count::ANSWERED) + c(count::ABANDONED),
                ));
            }
            Kind::ConnectionStorm => {
                checks.push(check(
                    "customers connected",
                    i64::from(self.params.customers),
                    self.memory.sessions,
                ));
                if self.params.open_session {
                    checks.push(check(
                        "sessions opened",
                        i64::from(self.params.customers),
                        c(count::OPENED),
                    ));
                }
            }
            Kind::IdleSessions => {
                checks.push(check(
                    "sessions opened",
                    self.params.sessions as i64,
                    c(count::OPENED),
                ));
            }
            // Their checks are made where they are measured (crate::phone).
            Kind::CallSetup | Kind::VoiceRelay | Kind::ChannelWebhook => {}
        }
        checks
    }

    /// Writes `<stem>.json` and `<stem>.html` into `dir`.
    pub fn write(
        reports: &[Report],
        ratios: &BTreeMap<String, f64>,
        dir: &Path,
        stem: &str,
    ) -> Result<()> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("failed to create {}", dir.display()))?;
        let json = serde_json::json!({ "runs": reports, "ratios_switchboard_over_relay": ratios });
        let path = dir.join(format!("{stem}.json"));
        std::fs::write(&path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("failed to write {}", path.display()))?;
        let path = dir.join(format!("{stem}.html"));
        std::fs::write(&path, crate::html::page(reports, ratios))
            .with_context(|| format!("failed to write {}", path.display()))?;
        Ok(())
    }

    /// The summary table printed at the end of a run.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\n== {} on {} ({} processes, {} source addresses, {:.1} s measured) ==",
            self.scenario, self.target, self.processes, self.sources, self.measured_secs
        );
        let _ = writeln!(
            out,
            "{:<24} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "latency (ms)", "count", "p50", "p90", "p99", "p99.9", "max"
        );
        for (name, p) in &self.latency {
            if p.count == 0 {
                continue;
            }
            let _ = writeln!(
                out,
                "{:<24} {:>9} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
                name, p.count, p.p50_ms, p.p90_ms, p.p99_ms, p.p999_ms, p.max_ms
            );
        }
        if !self.scenario.is_phone() {
            let _ = writeln!(
                out,
                "durable messages/s       {:>9.1}",
                self.durable_messages_per_sec
            );
        }
        for (name, value) in &self.counters {
            let _ = writeln!(out, "{name:<44} {value:>12}");
        }
        let memory = &self.memory;
        let mib = |kib: Option<u64>| {
            kib.map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
                .unwrap_or_else(|| "-".into())
        };
        let _ = writeln!(
            out,
            "server RSS: start {}, at go {}, peak {}, end {}",
            mib(memory.rss_start_kib),
            mib(memory.rss_go_kib),
            mib(memory.rss_peak_kib),
            mib(memory.rss_end_kib)
        );
        if let Some(per) = memory.kib_per_session {
            let _ = writeln!(
                out,
                "memory per session: {per:.2} KiB ({} sessions)",
                memory.sessions
            );
        }
        for node in &memory.nodes {
            let _ = writeln!(
                out,
                "  node {}: RSS at go {}, with everyone in {}; {} customers connected, {} sessions, {} KiB per customer",
                node.node,
                mib(node.rss_go_kib),
                mib(node.rss_at_sessions_kib),
                node.customers,
                node.sessions.map_or_else(|| "?".into(), |n| n.to_string()),
                node.kib_per_customer
                    .map_or_else(|| "?".into(), |kib| format!("{kib:.2}"))
            );
        }
        if let Some(sl) = &self.service_level {
            let _ = writeln!(
                out,
                "service level: {:.1} % answered within {} s ({} answered, {} within, {} abandoned)",
                sl.level * 100.0,
                sl.threshold_secs,
                sl.answered,
                sl.answered_within_threshold,
                sl.abandoned
            );
        }
        for (name, value) in &self.figures {
            let _ = writeln!(out, "{name:<44} {value:>12.3}");
        }
        for (kind, n) in &self.errors {
            let _ = writeln!(out, "error x{n}: {kind}");
        }
        for check in &self.checks {
            let _ = writeln!(
                out,
                "[{}] {}: expected {}, got {}",
                if check.ok { "ok" } else { "FAIL" },
                check.name,
                check.expected,
                check.got
            );
        }
        out
    }
}

/// switchboard / relay for the numbers both runs have.
pub fn ratios(switchboard: &Report, relay: &Report) -> BTreeMap<String, f64> {
    let mut ratios = BTreeMap::new();
    if relay.durable_messages_per_sec > 0.0 {
        ratios.insert(
            "messages_per_sec".to_string(),
            switchboard.durable_messages_per_sec / relay.durable_messages_per_sec,
        );
    }
    for (name, p) in &switchboard.latency {
        if let Some(base) = relay
            .latency
            .get(name)
            .filter(|b| b.count > 0 && b.p99_ms > 0.0)
            && p.count > 0
        {
            ratios.insert(format!("{name}_p99"), p.p99_ms / base.p99_ms);
        }
    }
    if let (Some(sb), Some(base)) = (
        switchboard.memory.kib_per_session,
        relay.memory.kib_per_session,
    ) && base > 0.0
    {
        ratios.insert("kib_per_session".into(), sb / base);
    }
    if let (Some(sb), Some(base)) = (switchboard.memory.rss_peak_kib, relay.memory.rss_peak_kib) {
        ratios.insert("rss_peak".into(), sb as f64 / base as f64);
    }
    ratios
}
