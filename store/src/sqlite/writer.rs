//! The one writer: a std thread that owns the write connection and commits
//! batches in groups.
//!
//! Each [`Command::Write`] is one caller's atomic batch. The thread takes the
//! first queued command, drains whatever else is already queued (up to
//! `max_group_batches`), and commits the lot in one `BEGIN IMMEDIATE`
//! transaction with one fsync. Inside it every batch runs in its own
//! savepoint, so a batch that fails (a taken identity, a duplicate seq) is
//! rolled back alone while the others commit. If the group transaction itself
//! fails (begin or commit), each batch is retried in a transaction of its own
//! so that one cause fails as few callers as possible.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use rusqlite::{Connection, TransactionBehavior, params};
use tokio::sync::oneshot;

use super::rows::{identity_owner, role_name, session_id_to_sql};
use super::sqlite_error;
use crate::{INTERACTION_TTL_MS, StoreError, WriteOp};
use engine::Millis;
use engine::customer::Identity;
use engine::ids::CustomerId;
use engine::message::Sender;

thread_local! {
    /// The writer thread's busy timeout, and when the current wait began.
    static BUSY: Cell<(Duration, Option<Instant>)> = const { Cell::new((Duration::ZERO, None)) };
}

/// Replaces SQLite's busy timeout on the writer's connection with short
/// waits. The write lock is held elsewhere only when another process
/// writes the same file (cluster nodes on one host, docs/cluster.md), for
/// about one commit; SQLite's own handler sleeps 1, 2, 5, 10 … 100 ms
/// between tries, which turned a ~1 ms wait into tens of milliseconds.
/// This one tries again every 100 µs for the first 5 ms, then every
/// millisecond, and gives up (`database is locked`) after `timeout`.
fn wait_briefly_when_busy(conn: &Connection, timeout: Duration) {
    BUSY.with(|busy| busy.set((timeout, None)));
    if let Err(err) = conn.busy_handler(Some(retry_when_busy)) {
        tracing::warn!(error = %err, "cannot set the writer's busy handler; SQLite's busy timeout stays");
    }
}

/// The busy handler: `attempt` counts the tries of this wait from 0.
fn retry_when_busy(attempt: i32) -> bool {
    BUSY.with(|busy| {
        let (timeout, since) = busy.get();
        let now = Instant::now();
        let since = match since {
            Some(since) if attempt > 0 => since,
            _ => now,
        };
        busy.set((timeout, Some(since)));
        let waited = now - since;
        if waited >= timeout {
            return false;
        }
        std::thread::sleep(if waited < Duration::from_millis(5) {
            Duration::from_micros(100)
        } else {
            Duration::from_millis(1)
        });
        true
    })
}

/// What the store sends to the writer thread.
pub(super) enum Command {
    /// One atomic batch.
    Write {
        batch: Vec<WriteOp>,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    /// Delete interactions expired at `now`.
    Purge {
        now: Millis,
        reply: oneshot::Sender<Result<u64, StoreError>>,
    },
    /// Finish what is queued before this and stop.
    Close,
}

/// Counters the writer keeps so that group commit can be observed.
#[derive(Debug, Default)]
pub(super) struct WriterCounters {
    pub(super) batches: AtomicU64,
    pub(super) transactions: AtomicU64,
    pub(super) checkpoints: AtomicU64,
}

struct PendingWrite {
    batch: Vec<WriteOp>,
    reply: oneshot::Sender<Result<(), StoreError>>,
}

/// The writer thread's body; returns when it receives [`Command::Close`] or
/// every sender is gone.
pub(super) fn run(
    mut conn: Connection,
    commands: Receiver<Command>,
    max_group_batches: usize,
    counters: Arc<WriterCounters>,
    checkpointer: Option<Arc<super::checkpointer::Signal>>,
    busy_timeout: Duration,
) {
    wait_briefly_when_busy(&conn, busy_timeout);
    let commit_group =
        |conn: &mut Connection, group: &mut Vec<PendingWrite>, counters: &WriterCounters| {
            if !group.is_empty() {
                commit_group(conn, group, counters);
                if let Some(signal) = &checkpointer {
                    signal.committed();
                }
            }
        };
    let mut group: Vec<PendingWrite> = Vec::new();
    'commands: while let Ok(first) = commands.recv() {
        let mut next = Some(first);
        while let Some(command) = next.take() {
            match command {
                Command::Write { batch, reply } => group.push(PendingWrite { batch, reply }),
                Command::Purge { now, reply } => {
                    commit_group(&mut conn, &mut group, &counters);
                    // The caller may have given up waiting; the purge stands either way.
                    let _ = reply.send(purge(&mut conn, now));
                }
                Command::Close => {
                    commit_group(&mut conn, &mut group, &counters);
                    break 'commands;
                }
            }
            if group.len() >= max_group_batches {
                break;
            }
            next = commands.try_recv().ok();
        }
        commit_group(&mut conn, &mut group, &counters);
    }
    if let Err((_, e)) = conn.close() {
        tracing::warn!(error = %e, "sqlite writer connection did not close cleanly");
    }
}

/// Commits every pending write and answers each caller.
fn commit_group(conn: &mut Connection, group: &mut Vec<PendingWrite>, counters: &WriterCounters) {
    if group.is_empty() {
        return;
    }
    counters
        .batches
        .fetch_add(group.len() as u64, Ordering::Relaxed);
    counters.transactions.fetch_add(1, Ordering::Relaxed);
    let n_ops: usize = group.iter().map(|w| w.batch.len()).sum();
    match commit_in_savepoints(conn, group) {
        Ok(outcomes) => {
            tracing::trace!(n_batches = group.len(), n_ops, "sqlite group committed");
            for (write, outcome) in group.drain(..).zip(outcomes) {
                // A caller that stopped waiting still had its batch decided.
                let _ = write.reply.send(outcome);
            }
        }
        Err(e) if group.len() > 1 => {
            tracing::warn!(error = %e, n_batches = group.len(), "sqlite group commit failed; retrying batches one by one");
            for write in group.drain(..) {
                counters.transactions.fetch_add(1, Ordering::Relaxed);
                // A group of one: the transaction's error is the batch's error.
                let outcome = commit_in_savepoints(conn, std::slice::from_ref(&write))
                    .and_then(|mut outcomes| outcomes.pop().expect("one outcome per batch"));
                // As above: the outcome is decided whether or not anyone listens.
                let _ = write.reply.send(outcome);
            }
        }
        Err(e) => {
            for write in group.drain(..) {
                // As above.
                let _ = write.reply.send(Err(e.clone()));
            }
        }
    }
}

/// One transaction holding every batch, each in a savepoint. The outer
/// `Err` means the transaction failed and nothing was written.
fn commit_in_savepoints(
    conn: &mut Connection,
    group: &[PendingWrite],
) -> Result<Vec<Result<(), StoreError>>, StoreError> {
    let mut tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sqlite_error("beginning write transaction"))?;
    let mut outcomes = Vec::with_capacity(group.len());
    for write in group {
        let savepoint = tx
            .savepoint()
            .map_err(sqlite_error("opening batch savepoint"))?;
        match apply_batch(&savepoint, &write.batch) {
            Ok(()) => {
                savepoint
                    .commit()
                    .map_err(sqlite_error("releasing batch savepoint"))?;
                outcomes.push(Ok(()));
            }
            Err(e) => {
                // Dropping rolls the savepoint back; `finish` reports if that failed.
                savepoint
                    .finish()
                    .map_err(sqlite_error("rolling back batch savepoint"))?;
                outcomes.push(Err(e));
            }
        }
    }
    tx.commit()
        .map_err(sqlite_error("committing write transaction"))?;
    Ok(outcomes)
}

fn purge(conn: &mut Connection, now: Millis) -> Result<u64, StoreError> {
    let deleted = conn
        .prepare_cached("DELETE FROM customer_interactions WHERE expires_at <= ?1")
        .and_then(|mut stmt| stmt.execute([now]))
        .map_err(sqlite_error("purging customer_interactions"))?;
    Ok(deleted as u64)
}

/// Applies one batch's ops in order on `conn` (inside a savepoint).
fn apply_batch(conn: &Connection, batch: &[WriteOp]) -> Result<(), StoreError> {
    for op in batch {
        apply(conn, op)?;
    }
    Ok(())
}

fn json(value: &impl serde::Serialize, what: &str) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::Backend(format!("sqlite: encoding {what}: {e}")))
}

fn apply(conn: &Connection, op: &WriteOp) -> Result<(), StoreError> {
    match op {
        WriteOp::PutCustomer(customer) => {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO customers
                 (customer_id, display_name, tier, tags, language, last_agent, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    customer.id.as_str(),
                    customer.display_name,
                    customer.tier,
                    json(&customer.tags, "customer tags").map_err(to_sqlite)?,
                    customer.language,
                    customer.last_agent.as_ref().map(|a| a.as_str()),
                    customer.created_at,
                ])
            })
            .map_err(sqlite_error("writing customers"))?;
            for identity in &customer.identities {
                link_identity(conn, &customer.id, identity)?;
            }
        }
        WriteOp::LinkIdentity { customer, identity } => link_identity(conn, customer, identity)?,
        WriteOp::PutSession(session) => {
            let times = &session.times;
            conn.prepare_cached(
                "INSERT OR REPLACE INTO sessions
                 (session_id, customer_id, channel, state, is_open, group_id, agent_id,
                  created_at, queued_at, offered_at, answered_at, first_response_at,
                  wrap_up_at, closed_at, last_seq, transfers, summary, rating, reply_route,
                  sla_group, route)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                         ?18, ?19, ?20, ?21)",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    session_id_to_sql(session.id),
                    session.customer_id.as_str(),
                    session.channel.as_str(),
                    session.state.as_str(),
                    !session.state.is_final(),
                    session.group.as_ref().map(|g| g.as_str()),
                    session.agent.as_ref().map(|a| a.as_str()),
                    times.created,
                    times.queued,
                    times.offered,
                    times.answered,
                    times.first_response,
                    times.wrap_up,
                    times.closed,
                    seq_to_sql(session.last_seq).map_err(to_sqlite)?,
                    session.transfers,
                    session.summary,
                    session.rating,
                    session
                        .reply_route
                        .as_ref()
                        .map(|route| serde_json::to_string(route).expect("a route serializes")),
                    session.sla_group.as_ref().map(|g| g.as_str()),
                    (!session.route.is_empty()).then(|| {
                        serde_json::to_string(&session.route).expect("a route serializes")
                    }),
                ])
            })
            .map_err(sqlite_error("writing sessions"))?;
        }
        WriteOp::AppendMessage(message) => {
            let (sender_kind, sender_agent) = match &message.sender {
                Sender::Customer => ("customer", None),
                Sender::Agent(agent) => ("agent", Some(agent.as_str())),
                Sender::Supervisor(agent) => ("supervisor", Some(agent.as_str())),
                Sender::System => ("system", None),
            };
            let inserted = conn
                .prepare_cached(
                    "INSERT INTO session_messages
                     (session_id, seq, sender_kind, sender_agent, body, client_message_id, channel, at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT (session_id, seq) DO NOTHING",
                )
                .and_then(|mut stmt| {
                    stmt.execute(params![
                        session_id_to_sql(message.session_id),
                        seq_to_sql(message.seq).map_err(to_sqlite)?,
                        sender_kind,
                        sender_agent,
                        message.body,
                        message.client_message_id,
                        message.channel.as_str(),
                        message.at,
                    ])
                })
                .map_err(sqlite_error("writing session_messages"))?;
            if inserted == 0 {
                return Err(StoreError::DuplicateSeq {
                    session: message.session_id,
                    seq: message.seq,
                });
            }
        }
        WriteOp::RecordInteraction(interaction) => {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO customer_interactions
                 (customer_id, at, session_id, channel, summary, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    interaction.customer_id.as_str(),
                    interaction.at,
                    session_id_to_sql(interaction.session_id),
                    interaction.channel.as_str(),
                    interaction.summary,
                    interaction.at.saturating_add(INTERACTION_TTL_MS),
                ])
            })
            .map_err(sqlite_error("writing customer_interactions"))?;
        }
        WriteOp::PutAgent(agent) => {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO agents
                 (agent_id, display_name, role, skills, groups, languages, capacity, sip)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    agent.id.as_str(),
                    agent.display_name,
                    role_name(agent.role),
                    json(&agent.skills, "agent skills").map_err(to_sqlite)?,
                    json(&agent.groups, "agent groups").map_err(to_sqlite)?,
                    json(&agent.languages, "agent languages").map_err(to_sqlite)?,
                    json(&agent.capacity, "agent capacity").map_err(to_sqlite)?,
                    agent
                        .sip
                        .as_ref()
                        .map(|sip| json(sip, "agent sip credentials"))
                        .transpose()
                        .map_err(to_sqlite)?,
                ])
            })
            .map_err(sqlite_error("writing agents"))?;
        }
        WriteOp::PutGroup(group) => {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO skill_groups
                 (group_id, display_name, sla_threshold_secs, sla_threshold_by_channel,
                  sla_target_pct, short_abandon_secs)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    group.id.as_str(),
                    group.display_name,
                    group.sla_threshold_secs,
                    json(&group.sla_threshold_by_channel, "group sla thresholds")
                        .map_err(to_sqlite)?,
                    group.sla_target_pct,
                    group.short_abandon_secs,
                ])
            })
            .map_err(sqlite_error("writing skill_groups"))?;
        }
        other => {
            let applied = super::records::apply(conn, other)?;
            debug_assert!(applied, "every op has a table");
        }
    }
    Ok(())
}

/// Links `identity` to `customer` unless another customer owns it.
fn link_identity(
    conn: &Connection,
    customer: &CustomerId,
    identity: &Identity,
) -> Result<(), StoreError> {
    match identity_owner(conn, &identity.channel, &identity.external_id)? {
        Some(owner) if &owner == customer => Ok(()),
        Some(owner) => Err(StoreError::IdentityTaken {
            channel: identity.channel.clone(),
            external_id: identity.external_id.clone(),
            owner,
        }),
        None => {
            conn.prepare_cached(
                "INSERT INTO customer_identities (channel, external_id, customer_id)
                 VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    identity.channel.as_str(),
                    identity.external_id,
                    customer.as_str(),
                ])
            })
            .map_err(sqlite_error("writing customer_identities"))?;
            Ok(())
        }
    }
}

/// Sequence numbers are stored in SQLite's signed integer; one beyond its
/// range is refused rather than wrapped (it would sort first).
fn seq_to_sql(seq: u64) -> Result<i64, StoreError> {
    i64::try_from(seq).map_err(|_| StoreError::Backend(format!("sqlite: seq {seq} exceeds i64")))
}

/// Carries an encoding error through a rusqlite closure.
fn to_sqlite(e: StoreError) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(e))
}
