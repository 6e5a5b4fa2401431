//! When a session ends: its auto-summary (shown as `last_summary` in the
//! 360° view) and the `session.closed` / `session.abandoned` webhook event,
//! written together in one batch.
//!
//! Session ends arrive through `Audience::Ended`. When more than
//! [`ENDED_BUFFER`] ends are unread at once, further ones are skipped (those
//! sessions get no summary) rather than slowing the sessions down.

use std::sync::Arc;

use actors::{Event, EventKind, Subscription};
use engine::store::WriteOp;
use engine::summary::{ExtractiveSummarizer, Summarizer};
use tracing::warn;

use super::Platform;
use super::wire::SummaryRecord;

/// Session ends the worker may have unread.
pub const ENDED_BUFFER: usize = 4096;
/// Messages read for one summary.
const MAX_MESSAGES: usize = 2_000;

/// Summarizes every session end until the platform stops.
pub async fn run(platform: Arc<Platform>, mut ended: Subscription) {
    let summarizer = ExtractiveSummarizer;
    loop {
        let event = tokio::select! {
            _ = platform.stopping().cancelled() => return,
            event = ended.recv() => match event {
                Some(event) => event,
                None => return,
            },
        };
        let result = match summarize(&platform, &summarizer, &event).await {
            Ok(()) => "written",
            Err(err) => {
                warn!(session_id = %event.session, error = %err, "session summary failed");
                "failed"
            }
        };
        metrics::counter!("switchboard_summaries_total", "result" => result).increment(1);
    }
}

/// Writes the summary of the session that `event` ended.
pub async fn summarize(
    platform: &Platform,
    summarizer: &dyn Summarizer,
    event: &Event,
) -> Result<(), engine::store::StoreError> {
    let store = &platform.store;
    let Some(session) = store.get_session(event.session).await? else {
        return Ok(());
    };
    let messages = store.messages(session.id, 0, MAX_MESSAGES).await?;
    let now = engine::now_millis();
    let summary = summarizer.summarize(&session, &messages, now);
    let mut ops = Vec::new();
    let event_type = match event.kind {
        EventKind::Abandoned => "session.abandoned",
        _ => "session.closed",
    };
    let payload = serde_json::json!({
        "session": crate::rest::types::SessionRecord::from(&session),
        "summary": SummaryRecord::from(&summary),
    });
    ops.extend(platform.webhooks.outbox_ops(event_type, payload, now));
    ops.push(WriteOp::PutSummary(summary));
    store.write_owned(ops).await?;
    platform.webhooks.wake();
    Ok(())
}
