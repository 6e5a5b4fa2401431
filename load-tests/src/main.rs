//! `loadgen`: load scenarios against switchboard (and a bare relay baseline).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use load_tests::report::{Report, ratios};
use load_tests::run::{RunOptions, run};
use load_tests::scenario::{Kind, Params};
use load_tests::search::{Bracket, Step};
use load_tests::target::{Launch, TargetKind};

/// switchboard's load generator: scenarios over the public protocol.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct Common {
    /// A TOML file of parameters (`scenario = "…"` may name the scenario).
    #[arg(long)]
    file: Option<PathBuf>,
    /// A parameter, `key=value` (repeatable); see `loadgen list`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Also run the same scenario against the bare relay and report switchboard / relay ratios.
    #[arg(long)]
    baseline: bool,
    /// Also run the same scenario with `nodes` = N (e.g. 1 against a
    /// 3-node run) and report this run / that one ratios.
    #[arg(long, value_name = "N", conflicts_with = "baseline")]
    nodes_baseline: Option<u32>,
    /// The switchboard binary to start (default: `switchboard` next to loadgen).
    #[arg(long)]
    switchboard_bin: Option<PathBuf>,
    /// Extra environment for the started switchboard, `SWITCHBOARD_…=value` (repeatable).
    #[arg(long = "server-env", value_name = "KEY=VALUE")]
    server_env: Vec<String>,
    /// Load a switchboard that is already running at this address instead
    /// (needs --secret; --server-pid for memory readings).
    #[arg(long, requires = "secret")]
    url: Option<SocketAddr>,
    /// The running server's `auth.secret`, to mint agent and admin tokens.
    #[arg(long)]
    secret: Option<String>,
    /// The running server's pid, to read its memory from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Where the JSON and HTML reports go (default: target/loadgen/<scenario>-<time>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario (see `loadgen list`).
    Run {
        /// Scenario name; may come from --file instead.
        scenario: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Find the highest steady-chat rate with customer→agent p99 within a limit.
    MaxRate {
        /// The p99 limit in milliseconds.
        #[arg(long, default_value_t = 10.0)]
        p99_ms: f64,
        /// Most runs per target.
        #[arg(long, default_value_t = 8)]
        max_steps: u32,
        #[command(flatten)]
        common: Common,
    },
    /// List the scenarios and their parameters with defaults.
    List,
    /// Serve the bare relay baseline.
    Relay {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Chats one agent holds at once.
        #[arg(long, default_value_t = 1_000)]
        capacity: u32,
    },
    /// A generator process (started by `run`; reads its plan on stdin).
    #[command(hide = true)]
    Worker,
}

fn main() {
    let cli = Cli::parse();
    let threads = match cli.command {
        Command::Worker => 1,
        _ => 2,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("the async runtime starts");
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Run { scenario, common } => run_command(scenario, common).await,
            Command::MaxRate {
                p99_ms,
                max_steps,
                common,
            } => max_rate(p99_ms, max_steps, common).await,
            Command::List => {
                list();
                Ok(true)
            }
            Command::Relay { listen, capacity } => load_tests::relay::serve(listen, capacity)
                .await
                .map(|()| true),
            Command::Worker => load_tests::worker::main().await.map(|()| true),
        }
    });
    match result {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(err) => {
            eprintln!("loadgen: {err:#}");
            std::process::exit(2);
        }
    }
}

fn list() {
    for kind in Kind::ALL {
        println!("{:<20} {}", kind.name(), kind.about());
    }
    println!(
        "\nparameters (defaults of steady-chat; other scenarios differ where noted by `loadgen run NAME --set …`):"
    );
    let defaults = toml::to_string(&Params::default()).unwrap_or_default();
    for line in defaults.lines() {
        println!("  {line}");
    }
}

fn scenario_of(name: Option<String>, common: &Common) -> Result<Kind> {
    let from_file = match &common.file {
        Some(path) => Params::kind_in_file(path)?,
        None => None,
    };
    match (name, from_file) {
        (Some(name), _) => name.parse(),
        (None, Some(kind)) => Ok(kind),
        (None, None) => {
            bail!("name a scenario (see `loadgen list`) or give a --file with `scenario = \"…\"`")
        }
    }
}

fn launch(common: &Common) -> Result<Launch> {
    if let Some(addr) = common.url {
        return Ok(Launch::External {
            addr,
            secret: common.secret.clone().context("--url needs --secret")?,
            pid: common.server_pid,
        });
    }
    let binary = match &common.switchboard_bin {
        Some(path) => path.clone(),
        None => {
            let exe = std::env::current_exe().context("no path to loadgen itself")?;
            exe.with_file_name("switchboard")
        }
    };
    if !binary.exists() {
        bail!(
            "no switchboard binary at {}: build it (`cargo build --release -p gateway -p load-tests`) or pass --switchboard-bin",
            binary.display()
        );
    }
    let mut env = Vec::new();
    for pair in &common.server_env {
        let (key, value) = pair
            .split_once('=')
            .with_context(|| format!("--server-env `{pair}`: expected KEY=VALUE"))?;
        env.push((key.to_string(), value.to_string()));
    }
    Ok(Launch::Switchboard { binary, env })
}

fn out_dir(common: &Common, kind: Kind) -> PathBuf {
    common.out.clone().unwrap_or_else(|| {
        let stamp = load_tests::now_rfc3339().replace([':', '-'], "");
        PathBuf::from("target/loadgen").join(format!("{kind}-{stamp}"))
    })
}

fn options(
    kind: Kind,
    params: Params,
    launch: Launch,
    common: &Common,
    out: &std::path::Path,
) -> RunOptions {
    RunOptions {
        kind,
        params,
        launch,
        work_dir: out.to_path_buf(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        progress: !common.quiet,
    }
}

async fn run_command(name: Option<String>, common: Common) -> Result<bool> {
    let kind = scenario_of(name, &common)?;
    let params = Params::load(kind, common.file.as_deref(), &common.sets)?;
    let out = out_dir(&common, kind);
    std::fs::create_dir_all(&out).with_context(|| format!("failed to create {}", out.display()))?;
    // The baseline's parameters are checked before the first run, not after it.
    let baseline_params = common
        .nodes_baseline
        .map(|nodes| Params {
            nodes,
            ..params.clone()
        })
        .map(|baseline| baseline.validate().map(|()| baseline))
        .transpose()
        .context("--nodes-baseline")?;
    let mut reports = vec![
        run(&options(
            kind,
            params.clone(),
            launch(&common)?,
            &common,
            &out,
        ))
        .await?,
    ];
    print!("{}", reports[0].table());
    if common.baseline {
        if !kind.has_baseline() {
            bail!("{kind} has no relay baseline (the relay keeps no sessions and replays nothing)");
        }
        let relay = run(&options(kind, params, Launch::Relay, &common, &out)).await?;
        print!("{}", relay.table());
        reports.push(relay);
    } else if let Some(baseline_params) = baseline_params {
        let baseline = run(&options(
            kind,
            baseline_params,
            launch(&common)?,
            &common,
            &out,
        ))
        .await?;
        print!("{}", baseline.table());
        reports.push(baseline);
    }
    let ratios = if reports.len() == 2 {
        ratios(&reports[0], &reports[1])
    } else {
        BTreeMap::new()
    };
    print_ratios(&label(&reports[0]), reports.get(1).map(label), &ratios);
    Report::write(&reports, &ratios, &out, "report")?;
    println!(
        "\nreport: {0}/report.json and {0}/report.html",
        out.display()
    );
    let passed = reports.iter().all(|report| report.passed);
    if !passed {
        eprintln!("loadgen: delivery checks failed (see [FAIL] above)");
    }
    Ok(passed)
}

/// What a report measured: `relay`, `switchboard`, or `switchboard (3 nodes)`.
fn label(report: &Report) -> String {
    target_label(report.target, report.params.nodes)
}

fn target_label(target: TargetKind, nodes: u32) -> String {
    if nodes > 1 {
        format!("{target} ({nodes} nodes)")
    } else {
        target.to_string()
    }
}

fn print_ratios(this: &str, that: Option<String>, ratios: &BTreeMap<String, f64>) {
    let Some(that) = that.filter(|_| !ratios.is_empty()) else {
        return;
    };
    println!("\n{this} / {that}:");
    for (name, ratio) in ratios {
        println!("  {name:<32} {ratio:>8.3}");
    }
}

async fn max_rate(p99_limit_ms: f64, max_steps: u32, common: Common) -> Result<bool> {
    let kind = Kind::SteadyChat;
    let params = Params::load(kind, common.file.as_deref(), &common.sets)?;
    let out = out_dir(&common, kind).with_file_name(format!(
        "max-rate-{}",
        load_tests::now_rfc3339().replace([':', '-'], "")
    ));
    let out = common.out.clone().unwrap_or(out);
    std::fs::create_dir_all(&out).with_context(|| format!("failed to create {}", out.display()))?;
    let mut targets = vec![(
        target_label(TargetKind::Switchboard, params.nodes),
        launch(&common)?,
        params.clone(),
    )];
    if common.baseline {
        targets.push((TargetKind::Relay.to_string(), Launch::Relay, params.clone()));
    } else if let Some(nodes) = common.nodes_baseline {
        let baseline = Params {
            nodes,
            ..params.clone()
        };
        baseline.validate()?;
        targets.push((
            target_label(TargetKind::Switchboard, nodes),
            launch(&common)?,
            baseline,
        ));
    }
    let labels: Vec<String> = targets.iter().map(|(label, ..)| label.clone()).collect();
    let mut summary = serde_json::Map::new();
    let mut best_reports = Vec::new();
    for (target, launch, params) in targets {
        let mut bracket = Bracket::default();
        let mut steps = Vec::new();
        let mut best: Option<Report> = None;
        while let Some(rate) = bracket.next(params.rate, steps.len() as u32, max_steps) {
            let step_params = Params {
                rate,
                ..params.clone()
            };
            eprintln!("\n{target}: trying {rate} customer messages/s");
            let report = run(&options(kind, step_params, launch.clone(), &common, &out)).await?;
            let step = Step::of(rate, &report, p99_limit_ms);
            eprintln!(
                "{target}: rate {rate}: durable {:.0}/s, e2e p99 {:?} ms, checks {} → {}",
                step.durable_messages_per_sec,
                step.e2e_p99_ms,
                if step.passed_checks { "ok" } else { "FAILED" },
                if step.good {
                    "sustained"
                } else {
                    "not sustained"
                }
            );
            bracket.record(rate, step.good);
            if step.good && best.as_ref().is_none_or(|b| b.params.rate < rate) {
                best = Some(report);
            }
            steps.push(step);
        }
        let half = match bracket.good {
            Some(max) => {
                let half_params = Params {
                    rate: (max / 2.0).round(),
                    ..params.clone()
                };
                let report =
                    run(&options(kind, half_params, launch.clone(), &common, &out)).await?;
                Some(Step::of((max / 2.0).round(), &report, p99_limit_ms))
            }
            None => None,
        };
        println!("\n== max-rate on {target}: p99 limit {p99_limit_ms} ms ==");
        for step in &steps {
            println!(
                "rate {:>8.0}/s  durable {:>8.0}/s  e2e p99 {:>8}  round trip p99 {:>8}  {}",
                step.rate,
                step.durable_messages_per_sec,
                step.e2e_p99_ms
                    .map(|v| format!("{v:.2} ms"))
                    .unwrap_or_else(|| "-".into()),
                step.round_trip_p99_ms
                    .map(|v| format!("{v:.2} ms"))
                    .unwrap_or_else(|| "-".into()),
                if step.good {
                    "sustained"
                } else {
                    "not sustained"
                }
            );
        }
        if let Some(best) = &best {
            println!(
                "highest sustained: {} customer messages/s = {:.0} durable messages/s",
                best.params.rate, best.durable_messages_per_sec
            );
        }
        if let Some(half) = &half {
            println!(
                "at half that rate ({}/s): e2e p99 {:?} ms",
                half.rate, half.e2e_p99_ms
            );
        }
        summary.insert(
            target.clone(),
            serde_json::json!({ "steps": steps, "max_rate": bracket.good, "max_durable_per_sec": best.as_ref().map(|b| b.durable_messages_per_sec), "at_half": half }),
        );
        best_reports.extend(best);
    }
    let best_of = |label: &String| {
        summary
            .get(label)
            .and_then(|s| s["max_durable_per_sec"].as_f64())
    };
    if let [this, that] = labels.as_slice()
        && let (Some(a), Some(b)) = (best_of(this), best_of(that))
    {
        println!(
            "\n{this} / {that}, highest sustained durable rate: {:.3}",
            a / b
        );
        summary.insert("ratio_max_rate".into(), serde_json::json!(a / b));
    }
    let path = out.join("max-rate.json");
    std::fs::write(&path, serde_json::to_string_pretty(&summary)?)
        .with_context(|| format!("failed to write {}", path.display()))?;
    let ratios = if best_reports.len() == 2 {
        ratios(&best_reports[0], &best_reports[1])
    } else {
        BTreeMap::new()
    };
    Report::write(&best_reports, &ratios, &out, "best")?;
    println!("\nreport: {0}/max-rate.json, {0}/best.html", out.display());
    Ok(true)
}
