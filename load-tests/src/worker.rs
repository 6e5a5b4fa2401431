//! One generator process (`loadgen worker`): reads its share of the run (a
//! [`WorkerPlan`]) from stdin, sets up (visitors, agents, answered
//! customers), prints `ready`, waits for `go`, runs the scenario, prints
//! `customers_done`, and keeps its agents working until `stop`; it prints a
//! progress line every second and its measurements at the end, all as JSON
//! lines on stdout.
//!
//! In a connection storm it prints `all_in` once every customer of this
//! process is connected (or failed) and holds them until the coordinator
//! says `release`: the coordinator measures the server's memory while every
//! process's customers are in, which no once-a-second sample can promise.
//!
//! The server gives any process's customers to any agent, so this process's
//! agents may still hold sessions of customers that another process drives:
//! only the coordinator knows when every process's customers have settled,
//! and says `stop` then.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::agent::{AgentBehaviour, AgentRun};
use crate::customer::Customer;
use crate::flows::{self, Failover, Schedule, Visit};
use crate::rng::Rng;
use crate::scenario::{Kind, Params};
use crate::stats::{Buckets, Snapshot, Stats};
use crate::wire::Endpoint;

/// One process's share of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerPlan {
    pub index: u32,
    pub kind: Kind,
    pub params: Params,
    /// The server's public listener (of the node this process connects to).
    pub addr: SocketAddr,
    /// Every node's public listener, in node order: where clients go when
    /// their node dies (`kill_node_at_secs`).
    #[serde(default)]
    pub nodes: Vec<SocketAddr>,
    /// Local addresses to connect from, in turn.
    pub sources: Vec<IpAddr>,
    /// Customers this process drives (the visitor pool, for the day scenarios).
    pub customers: u32,
    /// All customers of the run, for the steady-chat rate per customer.
    pub customers_total: u32,
    /// (agent id, token) of the agents this process signs in.
    pub agents: Vec<(String, String)>,
    /// This process's share of the arrivals (day scenarios).
    pub arrival_share: f64,
    /// Idle sessions: the first index and how many.
    pub first_session: u64,
    pub sessions: u64,
    /// For `POST /api/v1/inbound`.
    pub admin_token: String,
}

/// A line a worker prints.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Line {
    /// Set-up is done; waiting for `go`.
    Ready,
    /// This process's customers have finished (settled or failed); its
    /// agents keep answering until `stop`.
    CustomersDone,
    /// Connection storm: every customer of this process is connected (or
    /// failed); they hold until `release`.
    AllIn {
        /// Customers in (connected, with their session if the run opens
        /// one) and holding now.
        connected: i64,
    },
    /// Once a second.
    Progress(Progress),
    /// The end: everything measured.
    Done(Snapshot),
}

/// A progress line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Progress {
    /// Counters so far.
    pub counters: std::collections::BTreeMap<String, i64>,
    /// Errors so far.
    pub errors: u64,
    /// Latency histograms of the last second.
    pub interval: std::collections::BTreeMap<String, Buckets>,
}

/// Runs a worker: the plan on stdin's first line, `go` on the second, then
/// `release` (connection storm) and `stop`.
pub async fn main() -> Result<()> {
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let plan_line = stdin.next_line().await?.context("no plan on stdin")?;
    let plan: WorkerPlan = serde_json::from_str(&plan_line).context("unreadable worker plan")?;
    let stats = Stats::default();
    let progress = tokio::spawn(report_progress(stats.clone()));
    let endpoint = Endpoint { addr: plan.addr };
    let (stop_agents, agents_stopped) = watch::channel(false);
    let mut agent_tasks = start_agents(&plan, &endpoint, &stats, agents_stopped).await;
    let prepared = prepare(&plan, &endpoint, &stats).await?;
    emit(&Line::Ready).await?;
    let go = stdin
        .next_line()
        .await?
        .context("the coordinator went away before `go`")?;
    if go.trim() != "go" {
        bail!("expected `go`, got `{go}`");
    }
    let (release, released) = watch::channel(false);
    tokio::spawn(follow_coordinator(
        stdin,
        release,
        stop_agents,
        stats.clone(),
    ));
    run(&plan, &endpoint, &stats, prepared, released).await;
    emit(&Line::CustomersDone).await?;
    // Agents keep answering until every process's customers have settled
    // (the coordinator says `stop`), or until the coordinator is gone.
    while let Some(result) = agent_tasks.join_next().await {
        if let Ok(Err(err)) = result {
            stats.error(format!("agent: {}", flows::short(&err)));
        }
    }
    progress.abort();
    emit(&Line::Done(stats.snapshot())).await
}

/// Reads the coordinator's commands after `go`: `release` ends a storm's
/// hold, `stop` stops the agents and is the last. The coordinator gone means
/// both.
async fn follow_coordinator(
    mut stdin: tokio::io::Lines<BufReader<tokio::io::Stdin>>,
    release: watch::Sender<bool>,
    stop: watch::Sender<bool>,
    stats: Stats,
) {
    loop {
        match stdin.next_line().await {
            Ok(Some(line)) => match line.trim() {
                "release" => {
                    let _ = release.send(true); // nobody may be holding
                }
                "stop" => {
                    let _ = stop.send(true); // agents may have ended already
                    // The last command. Reading on would keep the process
                    // alive: a pending stdin read holds up the runtime's exit.
                    return;
                }
                other => stats.error(format!(
                    "the coordinator said `{other}`; expected `release` or `stop`"
                )),
            },
            Ok(None) | Err(_) => {
                let _ = release.send(true);
                let _ = stop.send(true);
                return;
            }
        }
    }
}

/// One line at a time: the progress task and the run both print.
static STDOUT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn emit(line: &Line) -> Result<()> {
    let mut text = serde_json::to_string(line).context("line serializes")?;
    text.push('\n');
    let _one_at_a_time = STDOUT.lock().await;
    let mut stdout = tokio::io::stdout();
    stdout.write_all(text.as_bytes()).await?;
    stdout.flush().await?;
    Ok(())
}

async fn report_progress(stats: Stats) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tick.tick().await;
        let snapshot = stats.snapshot();
        let line = Line::Progress(Progress {
            counters: snapshot.counters,
            errors: snapshot.errors.values().sum(),
            interval: stats.take_interval(),
        });
        if emit(&line).await.is_err() {
            return;
        }
    }
}

fn source(plan: &WorkerPlan, idx: usize) -> IpAddr {
    plan.sources[idx % plan.sources.len()]
}

/// Where client `idx` of this process goes when its node dies: only a run
/// that kills one has anywhere to go (otherwise a lost socket is an error).
fn failover(plan: &WorkerPlan, idx: usize) -> Failover {
    if plan.params.kill_node_at_secs > 0.0 {
        Failover {
            nodes: plan.nodes.clone(),
            spread: idx,
        }
    } else {
        Failover::default()
    }
}

/// Signs in this process's agents; each then works until `stop`.
async fn start_agents(
    plan: &WorkerPlan,
    endpoint: &Endpoint,
    stats: &Stats,
    stop: watch::Receiver<bool>,
) -> JoinSet<Result<()>> {
    let mut tasks = JoinSet::new();
    for (idx, (id, token)) in plan.agents.iter().enumerate() {
        let agent = AgentRun {
            id: id.clone(),
            token: token.clone(),
            source: source(plan, idx),
            endpoint: endpoint.clone(),
            behaviour: AgentBehaviour {
                wrap_up: Duration::from_secs_f64(plan.params.wrap_up_secs),
            },
            stats: stats.clone(),
            failover: failover(plan, idx),
        };
        match agent.connect().await {
            Ok(socket) => {
                tasks.spawn(agent.work(socket, stop.clone()));
            }
            Err(err) => stats.error(format!("agent connect: {}", flows::short(&err))),
        }
    }
    tasks
}

/// Visitor tokens for `n` new customers, through `POST /api/v1/visitors`.
async fn create_visitors(
    plan: &WorkerPlan,
    endpoint: &Endpoint,
    n: u32,
    stats: &Stats,
) -> Result<Vec<String>> {
    let client = reqwest::Client::builder()
        .local_address(source(plan, 0))
        .timeout(Duration::from_secs(30))
        .build()?;
    let url = format!("{}/api/v1/visitors", endpoint.http_base());
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = JoinSet::new();
    for _ in 0..8 {
        let (client, url, next, stats) = (client.clone(), url.clone(), next.clone(), stats.clone());
        tasks.spawn(async move {
            let mut tokens = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < u64::from(n) {
                loop {
                    let response = client
                        .post(&url)
                        .json(&serde_json::json!({}))
                        .send()
                        .await?;
                    let status = response.status();
                    if status.as_u16() == 429 {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                    if !status.is_success() {
                        stats.error(format!("visitor: http {status}"));
                        bail!("POST /api/v1/visitors answered {status}");
                    }
                    let body: serde_json::Value = response.json().await?;
                    let token = body["token"]
                        .as_str()
                        .context("visitor answer without `token`")?;
                    tokens.push(token.to_string());
                    break;
                }
            }
            anyhow::Ok(tokens)
        });
    }
    let mut tokens = Vec::with_capacity(n as usize);
    while let Some(result) = tasks.join_next().await {
        tokens.extend(result.context("visitor task panicked")??);
    }
    Ok(tokens)
}

/// What set-up leaves for the run.
enum Prepared {
    /// Customers connected, answered, waiting for `go`.
    Answered(Vec<Customer>),
    /// Customers with tokens, not connected yet.
    Tokens(Vec<Customer>),
    /// Nothing (idle sessions).
    Nothing,
}

async fn prepare(plan: &WorkerPlan, endpoint: &Endpoint, stats: &Stats) -> Result<Prepared> {
    if plan.kind == Kind::IdleSessions {
        return Ok(Prepared::Nothing);
    }
    let tokens = create_visitors(plan, endpoint, plan.customers, stats).await?;
    let customers: Vec<Customer> = tokens
        .into_iter()
        .enumerate()
        .map(|(idx, token)| {
            let mut customer = Customer::new(
                token,
                source(plan, idx),
                endpoint.clone(),
                stats.clone(),
                format!("w{}c{idx}", plan.index),
            );
            customer.sl_threshold = Duration::from_secs_f64(plan.params.sl_threshold_secs);
            customer.retry_unavailable = failover(plan, idx).possible();
            customer
        })
        .collect();
    match plan.kind {
        Kind::SteadyChat | Kind::Soak | Kind::ResumeStorm => {
            let answered = for_each(
                customers,
                plan.params.connect_concurrency,
                |mut customer| async move {
                    let result = flows::open_and_get_answered(&mut customer).await;
                    (customer, result)
                },
            )
            .await;
            Ok(Prepared::Answered(answered))
        }
        _ => Ok(Prepared::Tokens(customers)),
    }
}

/// Runs `job` on every customer, `concurrency` at a time; keeps the ones
/// that succeeded and counts the others as errors.
async fn for_each<F, Fut>(customers: Vec<Customer>, concurrency: u32, job: F) -> Vec<Customer>
where
    F: Fn(Customer) -> Fut,
    Fut: std::future::Future<Output = (Customer, Result<()>)> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(concurrency as usize));
    let mut tasks = JoinSet::new();
    for customer in customers {
        let permit = permits.clone().acquire_owned().await.expect("never closed");
        let future = job(customer);
        tasks.spawn(async move {
            let outcome = future.await;
            drop(permit);
            outcome
        });
    }
    let mut kept = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((customer, Ok(()))) => kept.push(customer),
            Ok((customer, Err(err))) => customer
                .stats
                .error(format!("customer: {}", flows::short(&err))),
            Err(err) => eprintln!("loadgen worker: a customer task failed: {err}"),
        }
    }
    kept
}

async fn run(
    plan: &WorkerPlan,
    endpoint: &Endpoint,
    stats: &Stats,
    prepared: Prepared,
    released: watch::Receiver<bool>,
) {
    let params = &plan.params;
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(params.duration_secs);
    let drain = Duration::from_secs_f64(params.drain_secs);
    match (plan.kind, prepared) {
        (Kind::SteadyChat | Kind::Soak, Prepared::Answered(customers)) => {
            let interval =
                Duration::from_secs_f64(f64::from(plan.customers_total.max(1)) / params.rate);
            let seed = params.seed;
            let index = plan.index;
            let schedule = Schedule {
                start,
                end,
                interval,
                drain,
            };
            let mut tasks = JoinSet::new();
            for (idx, mut customer) in customers.into_iter().enumerate() {
                let mut rng = Rng::new(seed, u64::from(index) << 32 | idx as u64);
                let failover = failover(plan, idx);
                tasks.spawn(async move {
                    let result = flows::steady(&mut customer, schedule, &failover, &mut rng).await;
                    (customer, result)
                });
            }
            collect(tasks).await;
        }
        (Kind::ResumeStorm, Prepared::Answered(customers)) => {
            let mut tasks = JoinSet::new();
            for (idx, mut customer) in customers.into_iter().enumerate() {
                let mut rng = Rng::new(params.seed, u64::from(plan.index) << 32 | idx as u64);
                let rounds = params.rounds;
                tasks.spawn(async move {
                    let result = flows::resume(&mut customer, rounds, drain, &mut rng).await;
                    (customer, result)
                });
            }
            collect(tasks).await;
        }
        (Kind::ConnectionStorm, Prepared::Tokens(customers)) => {
            let open_session = params.open_session;
            // With agents online every session is answered before it holds:
            // memory per connected customer with an assigned session.
            let answered = params.agents > 0;
            let permits = Arc::new(Semaphore::new(params.connect_concurrency as usize));
            // Customers in (connected, with their session) and holding; the
            // connected counter would count this process's agents too.
            let holding = Arc::new(AtomicI64::new(0));
            let mut tasks = JoinSet::new();
            for mut customer in customers {
                let released = released.clone();
                let holding = holding.clone();
                let permit = permits.clone().acquire_owned().await.expect("never closed");
                tasks.spawn(async move {
                    let mut released_inner = released;
                    let result = async {
                        if open_session && answered {
                            flows::open_and_get_answered(&mut customer).await?;
                        } else {
                            customer.connect(crate::stats::hist::CONNECT).await?;
                        }
                        if open_session && !answered {
                            customer.send_message().await?;
                            customer
                                .until("the first ack", flows::SETUP_TIMEOUT, |c| {
                                    c.session.is_some()
                                })
                                .await?;
                        }
                        holding.fetch_add(1, Ordering::SeqCst);
                        drop(permit);
                        let held = hold(&mut customer, &mut released_inner).await;
                        holding.fetch_sub(1, Ordering::SeqCst);
                        held
                    }
                    .await;
                    (customer, result)
                });
            }
            // Everyone is in (or failed): say so, and hold until every
            // process's customers are in and the coordinator lets go.
            let everyone_in = permits.acquire_many(params.connect_concurrency).await;
            drop(everyone_in);
            let connected = holding.load(Ordering::SeqCst);
            if let Err(err) = emit(&Line::AllIn { connected }).await {
                stats.error(format!("cannot tell the coordinator: {err}"));
            }
            collect(tasks).await;
        }
        (Kind::ContactCenterDay | Kind::PromotionSpike, Prepared::Tokens(customers)) => {
            day(plan, stats, customers, start, end).await;
        }
        (Kind::IdleSessions, _) => crate::idle::run(plan, endpoint, stats).await,
        (kind, _) => stats.error(format!("internal: no run for {kind}")),
    }
}

/// Holds a connected customer until released, reading what comes.
async fn hold(customer: &mut Customer, released: &mut watch::Receiver<bool>) -> Result<()> {
    loop {
        tokio::select! {
            changed = released.changed() => {
                if changed.is_err() || *released.borrow() {
                    break;
                }
            }
            seen = customer.next() => {
                if seen?.is_none() {
                    bail!("the server closed the socket while holding");
                }
            }
        }
    }
    customer.close().await;
    Ok(())
}

async fn collect(mut tasks: JoinSet<(Customer, Result<()>)>) {
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((_, Ok(()))) => {}
            Ok((customer, Err(err))) => {
                customer
                    .stats
                    .error(format!("customer: {}", flows::short(&err)));
                // A customer that failed mid-run still counts what it waited for.
                let (unacked, unanswered) = customer.unsettled();
                customer.stats.add("unacked_messages", unacked as i64);
                customer.stats.add("unanswered_messages", unanswered as i64);
            }
            Err(err) => eprintln!("loadgen worker: a customer task failed: {err}"),
        }
    }
}

/// Contact-center day: Poisson arrivals (×`spike_factor` in the spike
/// window for a promotion spike) until `end`, each a [`flows::visit`].
async fn day(
    plan: &WorkerPlan,
    stats: &Stats,
    customers: Vec<Customer>,
    start: Instant,
    end: Instant,
) {
    let params = &plan.params;
    let mut rng = Rng::new(params.seed, u64::from(plan.index));
    let spike = plan.kind == Kind::PromotionSpike;
    let spike_from = start + Duration::from_secs_f64(params.spike_at_secs);
    let spike_to = spike_from + Duration::from_secs_f64(params.spike_secs);
    let mut pool = customers.into_iter();
    let mut tasks = JoinSet::new();
    let mut at = start;
    loop {
        let factor = if spike && at >= spike_from && at < spike_to {
            params.spike_factor
        } else {
            1.0
        };
        let rate = params.arrivals_per_sec * plan.arrival_share * factor;
        at += Duration::from_secs_f64(rng.exponential(1.0 / rate));
        if at >= end {
            break;
        }
        tokio::time::sleep_until(at).await;
        let Some(mut customer) = pool.next() else {
            stats.error("the visitor pool ran out (raise arrivals margin)");
            break;
        };
        let visit = Visit {
            patience: Duration::from_secs_f64(rng.exponential(params.patience_secs)),
            handle: Duration::from_secs_f64(rng.exponential(params.handle_secs)),
            talk_interval: Duration::from_secs_f64(params.talk_interval_secs),
        };
        tasks.spawn(async move {
            let result = flows::visit(&mut customer, visit).await;
            (customer, result)
        });
    }
    collect(tasks).await;
}

/// How many customers a day run needs in its pool: the expected arrivals
/// (with the spike) plus a margin of 30 % and 20.
pub fn day_pool(params: &Params, kind: Kind, share: f64) -> u32 {
    let spike_extra = if kind == Kind::PromotionSpike {
        params.arrivals_per_sec
            * (params.spike_factor - 1.0)
            * params.spike_secs.min(params.duration_secs)
    } else {
        0.0
    };
    let expected = (params.arrivals_per_sec * params.duration_secs + spike_extra) * share;
    (expected * 1.3 + 20.0).ceil() as u32
}
