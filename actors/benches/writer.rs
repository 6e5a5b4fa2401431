//! Durable appends per second through the StoreWriter, with 10,000
//! interleaved sessions (target: at least 50,000 appends/s).
//!
//! Each iteration sends one append for every session, round-robin, all in
//! flight at once as separate `StoreWriterMessage::Write`s, and stops the
//! clock when the last completion has run, i.e. when all of them are durable.
//! Every iteration advances each session's seq, so the table grows as it would
//! in service. Building the messages is outside the clock.
//!
//! The store is SQLite in WAL mode on a temp file, once with
//! `Synchronous::Full` (fsync at each commit, the default) and once with
//! `Synchronous::Normal`. After each run the bench prints how many store
//! writes and SQLite transactions the appends took: group commit at work.
//!
//! `cargo bench -p actors --bench writer -- --warm-up-time 1 --measurement-time 5`

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actors::store_writer::{Completion, StoreWriter, StoreWriterArgs, StoreWriterMessage};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use engine::channel::Channel;
use engine::ids::SessionId;
use engine::message::{Sender, StoredMessage};
use ractor::{Actor, ActorRef};
use store::{SqliteOptions, SqliteStore, Synchronous, WriteOp};
use tokio::runtime::Runtime;
use tokio::sync::Notify;

/// Sessions appending at once; each iteration appends once to each.
const N_SESSIONS: usize = 10_000;
/// The StoreWriter's batch limit, as in `RuntimeConfig::default()`.
const MAX_BATCH_OPS: usize = 4096;

/// Counts one iteration's completions down and wakes the waiter at zero.
struct Countdown {
    remaining: AtomicUsize,
    failed: AtomicBool,
    all_done: Notify,
}

/// Totals over every iteration of one run, printed at its end.
#[derive(Default)]
struct RunTotals {
    n_appends: u64,
    n_store_writes: u64,
    n_transactions: u64,
}

fn append(session: usize, seq: u64) -> Vec<WriteOp> {
    vec![WriteOp::AppendMessage(StoredMessage {
        session_id: SessionId(session as u64 + 1),
        seq,
        sender: Sender::Customer,
        body: format!("hello from session {session}, message {seq}"),
        client_message_id: Some(format!("c-{session}-{seq}")),
        channel: Channel::Web,
        at: 1_700_000_000_000 + seq as i64,
    })]
}

/// Sends one append per session and waits until every one is durable.
async fn append_round(writer: &ActorRef<StoreWriterMessage>, round: Vec<Vec<WriteOp>>) {
    let countdown = Arc::new(Countdown {
        remaining: AtomicUsize::new(round.len()),
        failed: AtomicBool::new(false),
        all_done: Notify::new(),
    });
    for ops in round {
        let countdown = Arc::clone(&countdown);
        let done: Completion = Box::new(move |result| {
            if result.is_err() {
                countdown.failed.store(true, Ordering::Relaxed);
            }
            if countdown.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                countdown.all_done.notify_one();
            }
        });
        writer
            .cast(StoreWriterMessage::Write { ops, done })
            .expect("the StoreWriter is running");
    }
    countdown.all_done.notified().await;
    assert!(
        !countdown.failed.load(Ordering::Relaxed),
        "an append failed"
    );
}

fn durable_appends(c: &mut Criterion) {
    let mut group = c.benchmark_group("store_writer");
    group.throughput(Throughput::Elements(N_SESSIONS as u64));
    group.sample_size(10);
    for synchronous in [Synchronous::Full, Synchronous::Normal] {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Arc::new(
            SqliteStore::open_with(
                dir.path().join("bench.db"),
                SqliteOptions {
                    synchronous,
                    ..SqliteOptions::default()
                },
            )
            .expect("open the store"),
        );
        let (writer, writer_task) = spawn_writer(&runtime, Arc::clone(&store));
        let mut next_seq = vec![1_u64; N_SESSIONS];
        let mut totals = RunTotals::default();

        group.bench_function(
            BenchmarkId::new("durable_appends_10k_sessions", format!("{synchronous:?}")),
            |b| {
                b.iter_custom(|iters| {
                    let mut elapsed = Duration::ZERO;
                    for _ in 0..iters {
                        let round: Vec<Vec<WriteOp>> = next_seq
                            .iter_mut()
                            .enumerate()
                            .map(|(session, seq)| {
                                *seq += 1;
                                append(session, *seq - 1)
                            })
                            .collect();
                        let before = store.commit_stats();
                        let start = Instant::now();
                        runtime.block_on(append_round(&writer, round));
                        elapsed += start.elapsed();
                        let after = store.commit_stats();
                        totals.n_appends += N_SESSIONS as u64;
                        totals.n_store_writes += after.batches - before.batches;
                        totals.n_transactions += after.transactions - before.transactions;
                    }
                    elapsed
                })
            },
        );

        let n_rounds = totals.n_appends / N_SESSIONS as u64;
        // A filter on the command line may have skipped this run.
        if n_rounds > 0 {
            eprintln!(
                "store_writer/{synchronous:?}: {} appends in {n_rounds} rounds took {} Store::write calls and {} SQLite transactions: {:.1} appends per transaction, {:.1} transactions per round of {N_SESSIONS}",
                totals.n_appends,
                totals.n_store_writes,
                totals.n_transactions,
                totals.n_appends as f64 / totals.n_transactions.max(1) as f64,
                totals.n_transactions as f64 / n_rounds.max(1) as f64,
            );
        }
        writer.stop(None);
        runtime
            .block_on(writer_task)
            .expect("the StoreWriter stops cleanly");
    }
    group.finish();
}

fn spawn_writer(
    runtime: &Runtime,
    store: Arc<SqliteStore>,
) -> (ActorRef<StoreWriterMessage>, tokio::task::JoinHandle<()>) {
    runtime
        .block_on(Actor::spawn(
            None,
            StoreWriter,
            StoreWriterArgs {
                store,
                max_batch_ops: MAX_BATCH_OPS,
            },
        ))
        .expect("spawn the StoreWriter")
}

criterion_group!(benches, durable_appends);
criterion_main!(benches);
