//! The checkpointer: a std thread that copies the WAL into the database
//! file, so that no commit does.
//!
//! With SQLite's automatic checkpoint, the commit that pushes the WAL past
//! its threshold copies every page of the WAL into the database and fsyncs
//! it before it returns: one caller's write (and every write queued behind
//! it, so every ack in the system) waits for tens to hundreds of
//! milliseconds. Here the writer only says that it committed; this thread
//! waits `interval`, then runs a `PASSIVE` checkpoint on its own connection,
//! which never blocks the writer (WAL lets a checkpoint and a commit run at
//! once). Once a checkpoint has copied everything, the writer's next
//! transaction starts the WAL again from its beginning, so the file stays
//! small. The writer's own automatic checkpoint stays on, at a much larger
//! threshold, as a backstop should this thread ever fall behind.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use rusqlite::Connection;

use super::writer::WriterCounters;

/// What the writer and the checkpointer share.
#[derive(Debug, Default)]
pub(super) struct Signal {
    state: Mutex<SignalState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct SignalState {
    /// Commits since the last checkpoint.
    dirty: bool,
    /// The store is closing: stop.
    closing: bool,
}

impl Signal {
    /// The writer committed.
    pub(super) fn committed(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if !state.dirty {
            state.dirty = true;
            self.changed.notify_one();
        }
    }

    /// Stops the checkpointer after the checkpoint in progress, if any.
    pub(super) fn close(&self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).closing = true;
        self.changed.notify_one();
    }

    /// Waits for a commit; `false` once closing.
    fn wait_dirty(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        while !state.dirty && !state.closing {
            state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        state.dirty = false;
        !state.closing
    }

    /// Sleeps `interval` unless the store closes first; `false` if it did.
    fn pause(&self, interval: Duration) -> bool {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (state, _) = self
            .changed
            .wait_timeout_while(state, interval, |state| !state.closing)
            .unwrap_or_else(|p| p.into_inner());
        !state.closing
    }
}

/// The thread's body: after each burst of commits, one passive checkpoint.
/// Returns when the store closes (the writer's connection, closed last,
/// checkpoints what is left).
pub(super) fn run(
    conn: Connection,
    signal: Arc<Signal>,
    interval: Duration,
    counters: Arc<WriterCounters>,
) {
    while signal.wait_dirty() && signal.pause(interval) {
        // (busy, frames in the WAL, frames copied); a busy answer means
        // another checkpoint ran, and the next burst tries again.
        let result = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)?,
            ))
        });
        match result {
            Ok((_, log, copied)) => {
                counters.checkpoints.fetch_add(1, Ordering::Relaxed);
                tracing::trace!(log, copied, "sqlite wal checkpoint");
            }
            Err(e) => {
                tracing::warn!(error = %e, "sqlite wal checkpoint failed; the writer's backstop checkpoint remains")
            }
        }
    }
}
