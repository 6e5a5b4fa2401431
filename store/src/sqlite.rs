//! The embedded backend: one SQLite file in WAL mode.
//!
//! ```text
//!  write()/purge_expired() ──mpsc──▶ writer thread (owns the write connection,
//!        ▲                             group-commits queued batches, one fsync)
//!        └──────── oneshot reply ◀────┘
//!  reads ──spawn_blocking──▶ pool of read connections (WAL: readers never block the writer)
//! ```
//!
//! Durability: with [`Synchronous::Full`] (the default) a write that returned
//! `Ok` has been fsynced and survives a power loss as well as `kill -9`.
//! [`Synchronous::Normal`] skips the fsync at each commit in WAL mode: a write
//! that returned `Ok` still survives the process being killed (the WAL is in the
//! OS page cache), but the last commits may be lost if the machine loses power.
//!
//! Nothing here blocks the async runtime: the writer is its own thread and
//! reads run on `spawn_blocking`. Only [`SqliteStore::open`] and dropping the
//! store block (opening the file, flushing queued writes).

mod checkpointer;
mod message_log;
mod records;
mod rows;
mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::Connection;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use self::writer::{Command, WriterCounters};
use super::{Interaction, Store, StoreError, WriteOp};
use engine::Millis;
use engine::agent::Agent;
use engine::assist::ReplyTemplate;
use engine::channel::Channel;
use engine::customer::Customer;
use engine::group::SkillGroup;
use engine::ids::TicketId;
use engine::ids::{AgentId, CustomerId, SessionId};
use engine::kb::Article;
use engine::message::StoredMessage;
use engine::outbox::OutboxEntry;
use engine::session::Session;
use engine::sla::report::AgentLogEntry;
use engine::summary::SessionSummary;
use engine::supervision::AuditEntry;
use engine::ticket::{Ticket, TicketEvent};

/// How hard a commit waits for the disk (`PRAGMA synchronous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// fsync at every commit: an `Ok` write survives power loss.
    #[default]
    Full,
    /// No fsync at commit (WAL mode): an `Ok` write survives a process crash
    /// but not a power loss. Faster on slow disks.
    Normal,
}

impl Synchronous {
    fn pragma_value(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        }
    }
}

/// How to open a [`SqliteStore`].
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Durability of each commit; see the module docs.
    pub synchronous: Synchronous,
    /// Read connections; this many reads run at once, the rest wait.
    pub read_connections: usize,
    /// How long a connection waits for a lock held by another process
    /// sharing the file before failing with "database is locked".
    pub busy_timeout: Duration,
    /// The most batches the writer merges into one transaction.
    pub max_group_batches: usize,
    /// WAL pages after which a commit itself checkpoints them into the
    /// database (`PRAGMA wal_autocheckpoint`): the backstop should the
    /// checkpointer thread fall behind. A checkpoint copies each page once
    /// however many commits rewrote it, so a larger WAL saves copying.
    /// SQLite's own default is 1,000 pages (4 MB).
    pub wal_autocheckpoint_pages: u32,
    /// How long after a commit the checkpointer thread copies the WAL into
    /// the database, off the writer's path (see `checkpointer`); `None`
    /// leaves checkpoints to the commits, as SQLite does by default.
    pub checkpoint_interval: Option<Duration>,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            synchronous: Synchronous::Full,
            read_connections: 4,
            busy_timeout: Duration::from_secs(5),
            max_group_batches: 512,
            // 80 MB of WAL with 4 KB pages: +20-25% appends/s in
            // `actors/benches/writer.rs` over SQLite's default (BENCHMARKS.md).
            wal_autocheckpoint_pages: 20_000,
            checkpoint_interval: Some(Duration::from_millis(500)),
        }
    }
}

/// How many write transactions carried how many batches, since open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitStats {
    /// Batches answered (each one caller's `write`).
    pub batches: u64,
    /// Transactions committed or attempted for them.
    pub transactions: u64,
    /// Checkpoints the checkpointer thread ran.
    pub checkpoints: u64,
}

/// The embedded [`Store`]: one SQLite file, one writer thread, a pool of readers.
pub struct SqliteStore {
    path: PathBuf,
    commands: mpsc::Sender<Command>,
    writer_thread: Mutex<Option<JoinHandle<()>>>,
    checkpointer: Option<CheckpointerThread>,
    counters: Arc<WriterCounters>,
    readers: Arc<ReadPool>,
    closed: AtomicBool,
}

/// Read connections; the semaphore counts the ones in the vector.
struct ReadPool {
    connections: Mutex<Vec<Connection>>,
    available: Arc<Semaphore>,
}

/// A read connection on loan; goes back to the pool, then frees its permit,
/// even if the read panics.
struct Lease {
    pool: Arc<ReadPool>,
    connection: Option<Connection>,
    _permit: OwnedSemaphorePermit,
}

impl Lease {
    fn take(pool: Arc<ReadPool>, permit: OwnedSemaphorePermit) -> Lease {
        let connection = pool
            .connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop();
        assert!(
            connection.is_some(),
            "a permit guarantees a pooled connection"
        );
        Lease {
            pool,
            connection,
            _permit: permit,
        }
    }

    fn connection(&self) -> &Connection {
        self.connection.as_ref().expect("held until drop")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(connection) = self.connection.take() {
            self.pool
                .connections
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push(connection);
        }
        // `_permit` is dropped after this body: the connection is back first.
    }
}

/// Turns a rusqlite error into [`StoreError::Backend`] saying what was being done.
fn sqlite_error(context: &str) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
    move |e| StoreError::Backend(format!("sqlite: {context}: {e}"))
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` with default options.
    /// Blocks while it opens the file and creates the schema.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        SqliteStore::open_with(path, SqliteOptions::default())
    }

    /// Opens the database at `path` with `options`.
    pub fn open_with(
        path: impl AsRef<Path>,
        options: SqliteOptions,
    ) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref().to_owned();
        let mut write_conn = schema::connect(&path, &options)?;
        schema::migrate(&mut write_conn)?;
        write_conn.set_prepared_statement_cache_capacity(32);
        // Only the writer commits, so only its connection checkpoints.
        write_conn
            .pragma_update(None, "wal_autocheckpoint", options.wal_autocheckpoint_pages)
            .map_err(sqlite_error("setting wal_autocheckpoint"))?;

        let n_readers = options.read_connections.max(1);
        let mut connections = Vec::with_capacity(n_readers);
        for _ in 0..n_readers {
            let conn = schema::connect(&path, &options)?;
            conn.pragma_update(None, "query_only", true)
                .map_err(sqlite_error("setting query_only"))?;
            connections.push(conn);
        }
        let readers = Arc::new(ReadPool {
            connections: Mutex::new(connections),
            available: Arc::new(Semaphore::new(n_readers)),
        });

        let (commands, receiver) = mpsc::channel();
        let counters = Arc::new(WriterCounters::default());
        // The writer first: should the checkpointer not start, returning
        // drops `commands` and the writer ends with it (nothing is left
        // running), where the other order would leave a checkpointer
        // waiting forever.
        let signal = options
            .checkpoint_interval
            .map(|_| Arc::new(checkpointer::Signal::default()));
        let checkpoint_conn = match options.checkpoint_interval {
            Some(_) => Some(schema::connect(&path, &options)?),
            None => None,
        };
        let thread_counters = Arc::clone(&counters);
        let max_group_batches = options.max_group_batches.max(1);
        let writer_signal = signal.clone();
        let busy_timeout = options.busy_timeout;
        let writer_thread = std::thread::Builder::new()
            .name("sqlite-writer".to_owned())
            .spawn(move || {
                writer::run(
                    write_conn,
                    receiver,
                    max_group_batches,
                    thread_counters,
                    writer_signal,
                    busy_timeout,
                )
            })
            .map_err(|e| StoreError::Backend(format!("sqlite: starting writer thread: {e}")))?;
        let checkpointer = match (options.checkpoint_interval, signal, checkpoint_conn) {
            (Some(interval), Some(signal), Some(conn)) => {
                let thread_signal = Arc::clone(&signal);
                let thread_counters = Arc::clone(&counters);
                let thread = std::thread::Builder::new()
                    .name("sqlite-checkpoint".to_owned())
                    .spawn(move || {
                        checkpointer::run(conn, thread_signal, interval, thread_counters)
                    })
                    .map_err(|e| {
                        StoreError::Backend(format!("sqlite: starting checkpoint thread: {e}"))
                    })?;
                Some(CheckpointerThread {
                    signal,
                    thread: Mutex::new(Some(thread)),
                })
            }
            _ => None,
        };
        tracing::info!(path = %path.display(), synchronous = ?options.synchronous, n_readers, "sqlite store open");
        Ok(SqliteStore {
            path,
            commands,
            writer_thread: Mutex::new(Some(writer_thread)),
            checkpointer,
            counters,
            readers,
            closed: AtomicBool::new(false),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Group-commit counters since open: `batches / transactions` is the
    /// average number of callers that shared one fsync.
    pub fn commit_stats(&self) -> CommitStats {
        CommitStats {
            batches: self.counters.batches.load(Ordering::Relaxed),
            transactions: self.counters.transactions.load(Ordering::Relaxed),
            checkpoints: self.counters.checkpoints.load(Ordering::Relaxed),
        }
    }

    fn check_open(&self) -> Result<(), StoreError> {
        if self.closed.load(Ordering::Acquire) {
            Err(StoreError::Closed)
        } else {
            Ok(())
        }
    }

    /// Asks the checkpointer to stop and the writer to stop after the
    /// queued writes, and hands back their threads to join, once.
    fn stop_threads(&self) -> Option<StoppingThreads> {
        self.closed.store(true, Ordering::Release);
        let checkpointer = self.checkpointer.as_ref().and_then(|c| {
            c.signal.close();
            c.thread.lock().unwrap_or_else(|p| p.into_inner()).take()
        });
        // The thread may be gone already (closed before, or it panicked).
        let _ = self.commands.send(Command::Close);
        let writer = self
            .writer_thread
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()?;
        Some(StoppingThreads {
            writer,
            checkpointer,
        })
    }

    /// Runs `read` on a pooled read connection off the async runtime.
    async fn read<T, F>(&self, read: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.check_open()?;
        let permit = Arc::clone(&self.readers.available)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        let pool = Arc::clone(&self.readers);
        tokio::task::spawn_blocking(move || {
            let lease = Lease::take(pool, permit);
            read(lease.connection())
        })
        .await
        .map_err(|e| StoreError::Backend(format!("sqlite: read task failed: {e}")))?
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn write(&self, batch: &[WriteOp]) -> Result<(), StoreError> {
        self.write_owned(batch.to_vec()).await
    }

    async fn write_owned(&self, batch: Vec<WriteOp>) -> Result<(), StoreError> {
        self.check_open()?;
        let (reply, response) = oneshot::channel();
        self.commands
            .send(Command::Write { batch, reply })
            .map_err(|_| StoreError::Closed)?;
        // The writer drops the reply only when it stopped before reaching the batch.
        response.await.map_err(|_| StoreError::Closed)?
    }

    async fn get_customer(&self, id: &CustomerId) -> Result<Option<Customer>, StoreError> {
        let id = id.clone();
        self.read(move |conn| {
            // One snapshot for the profile and its identities.
            let tx = conn
                .unchecked_transaction()
                .map_err(sqlite_error("beginning read"))?;
            let customer = rows::get_customer(&tx, &id)?;
            tx.commit().map_err(sqlite_error("ending read"))?;
            Ok(customer)
        })
        .await
    }

    async fn find_customer_by_identity(
        &self,
        channel: &Channel,
        external_id: &str,
    ) -> Result<Option<CustomerId>, StoreError> {
        let channel = channel.clone();
        let external_id = external_id.to_owned();
        self.read(move |conn| rows::find_customer_by_identity(conn, &channel, &external_id))
            .await
    }

    async fn get_session(&self, id: SessionId) -> Result<Option<Session>, StoreError> {
        self.read(move |conn| rows::get_session(conn, id)).await
    }

    async fn sessions_of_customer(
        &self,
        id: &CustomerId,
        limit: usize,
    ) -> Result<Vec<Session>, StoreError> {
        let id = id.clone();
        self.read(move |conn| rows::sessions_of_customer(conn, &id, limit))
            .await
    }

    async fn open_sessions(&self) -> Result<Vec<Session>, StoreError> {
        self.read(rows::open_sessions).await
    }

    async fn messages(
        &self,
        session: SessionId,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.read(move |conn| rows::messages(conn, session, after_seq, limit))
            .await
    }

    async fn interactions(
        &self,
        customer: &CustomerId,
        now: Millis,
        limit: usize,
    ) -> Result<Vec<Interaction>, StoreError> {
        let customer = customer.clone();
        self.read(move |conn| rows::interactions(conn, &customer, now, limit))
            .await
    }

    async fn purge_expired(&self, now: Millis) -> Result<u64, StoreError> {
        self.check_open()?;
        let (reply, response) = oneshot::channel();
        self.commands
            .send(Command::Purge { now, reply })
            .map_err(|_| StoreError::Closed)?;
        response.await.map_err(|_| StoreError::Closed)?
    }

    async fn list_agents(&self) -> Result<Vec<Agent>, StoreError> {
        self.read(rows::list_agents).await
    }

    async fn get_agent(&self, id: &AgentId) -> Result<Option<Agent>, StoreError> {
        let id = id.clone();
        self.read(move |conn| rows::get_agent(conn, &id)).await
    }

    async fn list_groups(&self) -> Result<Vec<SkillGroup>, StoreError> {
        self.read(rows::list_groups).await
    }

    async fn get_ticket(&self, id: &TicketId) -> Result<Option<Ticket>, StoreError> {
        let id = id.clone();
        self.read(move |conn| records::get_ticket(conn, &id)).await
    }

    async fn tickets_of_customer(
        &self,
        customer: &CustomerId,
        limit: usize,
    ) -> Result<Vec<Ticket>, StoreError> {
        let customer = customer.clone();
        self.read(move |conn| records::tickets_of_customer(conn, &customer, limit))
            .await
    }

    async fn ticket_events(
        &self,
        ticket: &TicketId,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<TicketEvent>, StoreError> {
        let ticket = ticket.clone();
        self.read(move |conn| records::ticket_events(conn, &ticket, after_seq, limit))
            .await
    }

    async fn list_articles(&self) -> Result<Vec<Article>, StoreError> {
        self.read(records::list_articles).await
    }

    async fn list_templates(&self) -> Result<Vec<ReplyTemplate>, StoreError> {
        self.read(records::list_templates).await
    }

    async fn get_summary(&self, session: SessionId) -> Result<Option<SessionSummary>, StoreError> {
        self.read(move |conn| records::get_summary(conn, session))
            .await
    }

    async fn outbox_due(&self, now: Millis, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        self.read(move |conn| records::outbox_due(conn, now, limit))
            .await
    }

    async fn audit_log(
        &self,
        since: Millis,
        until: Millis,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        self.read(move |conn| records::audit_log(conn, since, until, limit))
            .await
    }

    async fn sessions_queued(
        &self,
        from: Millis,
        to: Millis,
        after: Option<(Millis, SessionId)>,
        limit: usize,
    ) -> Result<Vec<Session>, StoreError> {
        self.read(move |conn| rows::sessions_queued(conn, from, to, after, limit))
            .await
    }

    async fn agent_log(
        &self,
        from: Millis,
        to: Millis,
        after: Option<(Millis, u64)>,
        limit: usize,
    ) -> Result<Vec<AgentLogEntry>, StoreError> {
        self.read(move |conn| records::agent_log(conn, from, to, after, limit))
            .await
    }

    async fn agent_activity_before(
        &self,
        agent: &AgentId,
        at: Millis,
    ) -> Result<Option<AgentLogEntry>, StoreError> {
        let agent = agent.clone();
        self.read(move |conn| records::agent_activity_before(conn, &agent, at))
            .await
    }

    async fn close(&self) -> Result<(), StoreError> {
        let Some(threads) = self.stop_threads() else {
            return Ok(());
        };
        tokio::task::spawn_blocking(move || threads.join())
            .await
            .map_err(|e| StoreError::Backend(format!("sqlite: joining writer: {e}")))?
    }
}

/// The checkpointer's signal and its thread, taken once at close.
struct CheckpointerThread {
    signal: Arc<checkpointer::Signal>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// The store's threads, told to stop.
struct StoppingThreads {
    writer: JoinHandle<()>,
    checkpointer: Option<JoinHandle<()>>,
}

impl StoppingThreads {
    /// Waits for both: the checkpointer finishes the checkpoint in progress,
    /// the writer the writes queued.
    fn join(self) -> Result<(), StoreError> {
        let checkpointer = self.checkpointer.map(JoinHandle::join);
        if self.writer.join().is_err() {
            return Err(StoreError::Backend(
                "sqlite: writer thread panicked".to_owned(),
            ));
        }
        if matches!(checkpointer, Some(Err(_))) {
            return Err(StoreError::Backend(
                "sqlite: checkpoint thread panicked".to_owned(),
            ));
        }
        Ok(())
    }
}

impl Drop for SqliteStore {
    /// Flushes queued writes and stops the threads (blocking until they have).
    fn drop(&mut self) {
        if let Some(threads) = self.stop_threads()
            && let Err(err) = threads.join()
        {
            tracing::error!(path = %self.path.display(), error = %err, "sqlite store did not stop cleanly");
        }
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
