//! When a session ends: its auto-summary (shown as `last_summary` in the
//! 360° view) and the `session.closed` / `session.abandoned` event.
//!
//! The session actor writes a session-ended job
//! ([`OutboxEntry::session_ended`]) in the batch that stores the session's
//! end. The outbox worker ([`super::outbox`]) runs it here: the summary,
//! the event's outbox entries and the job's deletion are written in one
//! batch through the StoreWriter, so the job is done once, and a crash at
//! any point loses nothing: a job that is still stored is run by the next
//! process. A job that fails is retried like a delivery. Session ends heard
//! through `Audience::Ended` only wake the worker; one that is missed is
//! found at the next poll.

use std::sync::Arc;

use engine::outbox::OutboxEntry;
use engine::summary::{ExtractiveSummarizer, Summarizer};
use store::WriteOp;

use super::Platform;
use super::outbox::PlatformEvent;
use crate::event::Subscription;

/// Session ends the waker may have unread; more are skipped (the worker's
/// poll finds their jobs).
pub const ENDED_BUFFER: usize = 1024;
/// Messages read for one summary.
const MAX_MESSAGES: usize = 2_000;

/// Wakes the outbox worker at each session end and each durable write of
/// agents' replies to channel accounts, until the platform stops.
pub async fn wake_on_ends(platform: Arc<Platform>, mut ended: Subscription) {
    loop {
        tokio::select! {
            _ = platform.stopping().cancelled() => return,
            _ = platform.switchboard.outbox_written() => platform.outbox.wake(),
            event = ended.recv() => match event {
                Some(_) => platform.outbox.wake(),
                None => return,
            },
        }
    }
}

/// Runs one session-ended job: writes the session's summary (unless
/// summaries are off) and its `session.*` outbox entries, and deletes the
/// job, in one batch. An error leaves the job for a retry.
pub async fn run_job(platform: &Platform, job: &OutboxEntry) -> Result<(), String> {
    let result = write_job(platform, job).await;
    if platform.summaries {
        let result = if result.is_ok() { "written" } else { "failed" };
        metrics::counter!("switchboard_summaries_total", "result" => result).increment(1);
    }
    result
}

async fn write_job(platform: &Platform, job: &OutboxEntry) -> Result<(), String> {
    let Some(session_id) = job.ended_session() else {
        return Err(format!(
            "session-ended job `{}`: payload `{}` is not a session id",
            job.id, job.payload
        ));
    };
    let store = &platform.store;
    let session = store
        .get_session(session_id)
        .await
        .map_err(|err| err.to_string())?;
    let mut ops = Vec::new();
    // A session that is gone (purged) has nothing left to report.
    if let Some(session) = session {
        let now = engine::now_millis();
        let summary = if platform.summaries {
            let messages = store
                .messages(session.id, 0, MAX_MESSAGES)
                .await
                .map_err(|err| err.to_string())?;
            Some(ExtractiveSummarizer.summarize(&session, &messages, now))
        } else {
            None
        };
        let reported = PlatformEvent::SessionEnded {
            event_type: &job.event_type,
            session: &session,
            summary: summary.as_ref(),
        };
        ops.extend(
            platform
                .outbox
                .entries_for(&reported, now)
                .into_iter()
                .map(WriteOp::PutOutbox),
        );
        ops.extend(summary.map(WriteOp::PutSummary));
    }
    ops.push(WriteOp::DeleteOutbox(job.id.clone()));
    platform.write(ops).await.map_err(|err| err.to_string())
}
