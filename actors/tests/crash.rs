//! Crash test: a child process appending through the StoreWriter is killed
//! with SIGKILL; after reopening, every append that was acknowledged is there,
//! in order, exactly once (DESIGN.md §5, "Durability contract").
//!
//! One binary plays both parts. Run normally it is the parent; with
//! [`CHILD_DB_ENV`] set it is the child, which the parent starts by
//! re-executing itself:
//!
//! ```text
//!  parent ──spawn──▶ child: SqliteStore (Synchronous::Full) + StoreWriter,
//!    ▲                      N_SESSIONS tasks appending seq 1, 2, 3, … each
//!    └── "ACK <session> <seq>" lines on stdout, one per durable append
//!  after ~ACKS_PER_ROUND acks: SIGKILL, reopen the file, verify, repeat
//! ```
//!
//! The child prints an ack line only after `write_and_wait` returned `Ok`, so
//! every line the parent reads is an append the store promised to keep. Rows
//! present without an ack line are allowed: they were committed when the kill
//! landed, before their line was printed.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use actors::store_writer::{StoreWriter, StoreWriterArgs, write_and_wait};
use anyhow::{Context, bail, ensure};
use engine::channel::Channel;
use engine::ids::SessionId;
use engine::message::{Sender, StoredMessage};
use store::{SqliteStore, Store, WriteOp};

/// Set (to the database path) in the child's environment; its presence is
/// what makes this binary the child.
const CHILD_DB_ENV: &str = "SWITCHBOARD_CRASH_CHILD_DB";
/// Sessions appending at once in the child, one append in flight each.
const N_SESSIONS: u64 = 200;
/// Acks the parent waits for in each round before the kill.
const ACKS_PER_ROUND: usize = 5_000;
/// Kill / reopen cycles on the same file.
const N_ROUNDS: usize = 3;
/// The most extra time the parent lets the child run after `ACKS_PER_ROUND`
/// acks, so that the kill lands at a different point of a commit each time.
const MAX_KILL_DELAY: Duration = Duration::from_millis(20);
/// How long a round may take before the test gives up on the child.
const ROUND_TIMEOUT: Duration = Duration::from_secs(30);

fn main() -> anyhow::Result<()> {
    // `cargo test -- --list` style probes: this binary is one test.
    if std::env::args().any(|arg| arg == "--list") {
        println!("crash: test");
        return Ok(());
    }
    match std::env::var_os(CHILD_DB_ENV) {
        Some(path) => child(PathBuf::from(path)),
        None => parent(),
    }
}

/// The body of message `seq` of `session`: the parent recomputes it to check
/// that what was stored is what was written.
fn body(session: u64, seq: u64) -> String {
    format!("session {session} message {seq}")
}

fn client_message_id(session: u64, seq: u64) -> String {
    format!("c-{session}-{seq}")
}

fn message(session: u64, seq: u64) -> StoredMessage {
    StoredMessage {
        session_id: SessionId(session),
        seq,
        sender: Sender::Customer,
        body: body(session, seq),
        client_message_id: Some(client_message_id(session, seq)),
        channel: Channel::Web,
        at: seq as i64,
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("failed to build the tokio runtime")
}

// ---------------------------------------------------------------- child

/// Appends forever through the StoreWriter until killed. Each session resumes
/// after the last seq the store holds for it.
fn child(path: PathBuf) -> anyhow::Result<()> {
    runtime()?.block_on(async move {
        let store = Arc::new(
            SqliteStore::open(&path)
                .with_context(|| format!("child failed to open {}", path.display()))?,
        );
        let (writer, _writer_task) = ractor::Actor::spawn(
            None,
            StoreWriter,
            StoreWriterArgs {
                store: store.clone(),
                max_batch_ops: 4096,
            },
        )
        .await
        .context("child failed to spawn the StoreWriter")?;

        let mut tasks = tokio::task::JoinSet::new();
        for session in 1..=N_SESSIONS {
            let last_seq = store
                .messages(SessionId(session), 0, usize::MAX)
                .await
                .context("child failed to read a session's messages")?
                .last()
                .map_or(0, |m| m.seq);
            let writer = writer.clone();
            tasks.spawn(async move {
                for seq in last_seq + 1.. {
                    let ops = vec![WriteOp::AppendMessage(message(session, seq))];
                    write_and_wait(&writer, ops)
                        .await
                        .with_context(|| format!("append {session}/{seq} failed"))?;
                    // Only now is the append acknowledged. One `write` call
                    // per line, so a kill cuts at most the line in progress.
                    let line = format!("ACK {session} {seq}\n");
                    let mut stdout = std::io::stdout().lock();
                    stdout.write_all(line.as_bytes())?;
                    stdout.flush()?;
                }
                anyhow::Ok(())
            });
        }
        // Runs until killed; getting here means an append failed.
        while let Some(result) = tasks.join_next().await {
            result.context("append task panicked")??;
        }
        bail!("child stopped appending without being killed")
    })
}

// ---------------------------------------------------------------- parent

/// Kills the child if the parent bails out early, so no orphan keeps writing.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        // Already dead after a normal round; then kill fails, which is fine.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What one round learnt from the child's stdout.
#[derive(Default)]
struct RoundAcks {
    n_acks: usize,
}

fn parent() -> anyhow::Result<()> {
    let started = Instant::now();
    let dir = tempfile::tempdir().context("failed to create a temp dir")?;
    let path = dir.path().join("crash.db");
    // Highest acknowledged seq per session, over all rounds.
    let mut acked: HashMap<u64, u64> = HashMap::new();
    let mut n_acks_total = 0;
    for round in 1..=N_ROUNDS {
        let acks = run_and_kill(&path, round, &mut acked)
            .with_context(|| format!("crash round {round} failed"))?;
        let n_stored = verify(&path, &acked)
            .with_context(|| format!("crash round {round}: verification failed"))?;
        n_acks_total += acks.n_acks;
        // Rows above a session's last acked seq were committed when the kill
        // landed, before their ack line was printed (allowed).
        let n_up_to_last_ack: u64 = acked.values().sum();
        println!(
            "crash round {round}: {n_stored} stored after {n_acks_total} acks in all rounds, {} stored past the last ack; verified",
            n_stored - n_up_to_last_ack,
        );
    }
    println!(
        "crash: {N_ROUNDS} rounds of SIGKILL and reopen, every acknowledged append present once and in order ({:.1}s)",
        started.elapsed().as_secs_f64()
    );
    dir.close().context("failed to remove the temp dir")?;
    Ok(())
}

/// Starts a child on `path`, reads its acks into `acked` until a little after
/// `ACKS_PER_ROUND`, kills it with SIGKILL, and reads the acks it printed
/// before dying.
fn run_and_kill(
    path: &Path,
    round: usize,
    acked: &mut HashMap<u64, u64>,
) -> anyhow::Result<RoundAcks> {
    let exe = std::env::current_exe().context("failed to find the test binary")?;
    let mut child = ChildGuard(
        Command::new(exe)
            .env(CHILD_DB_ENV, path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("failed to start the child")?,
    );
    let stdout = child.0.stdout.take().context("child has no stdout")?;

    // A thread reads lines so that the parent can wait with a deadline.
    let (lines_tx, lines_rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || -> std::io::Result<()> {
        let mut stdout = BufReader::new(stdout);
        loop {
            let mut line = String::new();
            if stdout.read_line(&mut line)? == 0 {
                return Ok(());
            }
            // A line cut by the kill has no newline: its ack never arrived.
            if line.ends_with('\n') && lines_tx.send(line).is_err() {
                return Ok(());
            }
        }
    });

    let mut acks = RoundAcks::default();
    let mut record = |line: &str| -> anyhow::Result<()> {
        let (session, seq) = parse_ack(line)?;
        let previous = acked.entry(session).or_insert(0);
        ensure!(
            seq > *previous,
            "session {session}: ack for seq {seq} after an ack for seq {previous}"
        );
        *previous = seq;
        acks.n_acks += 1;
        Ok(())
    };

    let round_deadline = Instant::now() + ROUND_TIMEOUT;
    let mut n_round_acks = 0;
    while n_round_acks < ACKS_PER_ROUND {
        let wait = round_deadline.saturating_duration_since(Instant::now());
        match lines_rx.recv_timeout(wait) {
            Ok(line) => {
                record(&line)?;
                n_round_acks += 1;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                bail!("only {n_round_acks} acks within {ROUND_TIMEOUT:?}")
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.0.wait().context("failed to wait for the child")?;
                bail!("child exited by itself ({status}) after {n_round_acks} acks");
            }
        }
    }
    let delay = kill_delay(round);
    let kill_at = Instant::now() + delay;
    while let Some(wait) = kill_at.checked_duration_since(Instant::now()) {
        match lines_rx.recv_timeout(wait) {
            Ok(line) => record(&line)?,
            Err(mpsc::RecvTimeoutError::Timeout) => break,
            Err(mpsc::RecvTimeoutError::Disconnected) => bail!("child exited by itself"),
        }
    }
    // `Child::kill` sends SIGKILL on Unix: no destructor, flush or
    // SqliteStore::drop runs in the child. Only what was committed survives.
    child.0.kill().context("failed to kill the child")?;
    let status = child.0.wait().context("failed to wait for the child")?;
    ensure!(
        !status.success(),
        "child exited successfully instead of being killed"
    );
    // Lines the child printed before it died are acks too.
    for line in lines_rx.iter() {
        record(&line)?;
    }
    reader
        .join()
        .map_err(|_| anyhow::anyhow!("stdout reader panicked"))?
        .context("failed to read the child's stdout")?;
    println!(
        "crash round {round}: {} acked, killed after {}ms more, verifying…",
        acks.n_acks,
        delay.as_millis()
    );
    Ok(acks)
}

fn parse_ack(line: &str) -> anyhow::Result<(u64, u64)> {
    let mut words = line.split_whitespace();
    match (words.next(), words.next(), words.next(), words.next()) {
        (Some("ACK"), Some(session), Some(seq), None) => Ok((
            session.parse().context("bad session in ack line")?,
            seq.parse().context("bad seq in ack line")?,
        )),
        _ => bail!("unexpected line from the child: {line:?}"),
    }
}

/// A different delay each run and round, without a random-number crate.
fn kill_delay(round: usize) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let spread = MAX_KILL_DELAY.as_micros() as u64 + 1;
    Duration::from_micros((u64::from(nanos) + round as u64 * 7_919) % spread)
}

/// Reopens the file and checks every session: seqs are exactly 1..=n (in
/// order, no gap, no duplicate), every row is what the child wrote, and every
/// acknowledged seq is among them. Returns how many messages are stored.
fn verify(path: &Path, acked: &HashMap<u64, u64>) -> anyhow::Result<u64> {
    runtime()?.block_on(async {
        let store = SqliteStore::open(path)
            .with_context(|| format!("failed to reopen {} after the kill", path.display()))?;
        let mut n_stored = 0;
        for session in 1..=N_SESSIONS {
            let messages = store
                .messages(SessionId(session), 0, usize::MAX)
                .await
                .with_context(|| format!("failed to read session {session}"))?;
            for (index, stored) in messages.iter().enumerate() {
                let seq = index as u64 + 1;
                ensure!(
                    stored.seq == seq,
                    "session {session}: position {index} holds seq {} instead of {seq} (gap, duplicate or disorder)",
                    stored.seq
                );
                ensure!(
                    *stored == message(session, seq),
                    "session {session} seq {seq}: stored {stored:?} differs from what was written"
                );
            }
            let n_messages = messages.len() as u64;
            let acked_seq = acked.get(&session).copied().unwrap_or(0);
            ensure!(
                acked_seq <= n_messages,
                "session {session}: seq {acked_seq} was acknowledged but only {n_messages} messages survived the kill"
            );
            n_stored += n_messages;
        }
        store.close().await.context("failed to close the store")?;
        Ok(n_stored)
    })
}
