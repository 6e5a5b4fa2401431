//! Agents' replies to customers on message platforms: the outbox's courier
//! for the `[[channels]]` accounts.
//!
//! A session whose customer last wrote through an account stores each
//! agent message with an outbox entry for `@channel/<account>` (see
//! `actors::session::delivery`). The outbox worker schedules, retries with
//! backoff and limits those entries like webhooks; this courier hands each
//! to its account's adapter ([`ChannelAdapter::deliver`]) and tells the
//! session what became of it, as the agent sees it:
//!
//! | the adapter says | the entry | the agent sees |
//! |---|---|---|
//! | taken | deleted | `sent` |
//! | [`DeliveryFailure::Retry`] | retried with backoff | `retrying` with the reason (first failure only) |
//! | [`DeliveryFailure::Refused`] | deleted | `failed` with the platform's code and reason |
//! | retries exhausted | parked dead | `failed`, `retries_exhausted` |
//!
//! A report that cannot be recorded (the store is down) is logged; the
//! delivery's own outcome stands, so a platform never gets a reply twice
//! because a report failed.

use std::sync::Arc;

use actors::platform::{Courier, DeliveryError};
use actors::{DeliveryReport, DeliveryState, Switchboard};
use async_trait::async_trait;
use channels::{ChannelAdapter, DeliveryFailure, OutboundMessage, Registry};
use engine::outbox::{ChannelReply, OutboxEntry};
use tracing::{debug, warn};

/// Outcomes of deliveries to an account's platform, by `result`: `sent`,
/// `retry`, `refused`, `dead`.
pub const DELIVERIES_TOTAL: &str = "switchboard_channel_deliveries_total";
/// From an agent's reply being stored to the platform taking it.
pub const DELIVERY_SECONDS: &str = "switchboard_channel_delivery_seconds";
/// Replies that failed for good, by the platform's error code (WeChat
/// `45015`, `retries_exhausted`, `not_supported`).
pub const DELIVERY_ERRORS_TOTAL: &str = "switchboard_channel_delivery_errors_total";

/// Counts one reply that failed for good with `code`.
fn count_error(account: &str, code: &str) {
    metrics::counter!(DELIVERY_ERRORS_TOTAL, "account" => account.to_owned(), "code" => code.to_owned())
        .increment(1);
}

/// The courier of every configured channel account.
pub struct ChannelCourier {
    channels: Registry,
    switchboard: Switchboard,
}

impl ChannelCourier {
    /// A courier over the accounts of `channels`, reporting to `switchboard`.
    pub fn new(channels: Registry, switchboard: Switchboard) -> Self {
        ChannelCourier {
            channels,
            switchboard,
        }
    }

    fn adapter(&self, entry: &OutboxEntry) -> Option<&Arc<dyn ChannelAdapter>> {
        self.channels.get(entry.channel_account()?)
    }

    /// Records `state` of the reply in its session; a failure is logged.
    async fn report(
        &self,
        reply: &ChannelReply,
        account: &str,
        state: DeliveryState,
        code: Option<String>,
        reason: Option<String>,
    ) {
        let report = DeliveryReport {
            of: reply.seq,
            account: account.to_owned(),
            state,
            code,
            reason,
        };
        if let Err(err) = self
            .switchboard
            .report_delivery(reply.session, report)
            .await
        {
            warn!(session_id = %reply.session, seq = reply.seq, account, state = state.as_str(), error = %err, "cannot record a reply's delivery state");
        }
    }
}

/// Counts one delivery outcome of `account`.
fn count(account: &str, result: &'static str) {
    metrics::counter!(DELIVERIES_TOTAL, "account" => account.to_owned(), "result" => result)
        .increment(1);
}

/// Registers an account's delivery series at zero, so that its panels show
/// 0 from start.
pub fn register_series(account: &channels::ChannelAccount) {
    for result in ["sent", "retry", "refused", "dead"] {
        metrics::counter!(DELIVERIES_TOTAL, "account" => account.name.clone(), "result" => result)
            .increment(0);
    }
    metrics::counter!(
        crate::rest::channel_inbound::MESSAGES_TOTAL,
        "account" => account.name.clone(),
        "channel" => account.channel.to_string(),
        "direction" => "out"
    )
    .increment(0);
}

/// The reply's image, when its whole text is one `http(s)` link to a
/// picture (attachments travel as links): platforms that send images send
/// it as one.
fn image_url(text: &str) -> Option<String> {
    let link = text.trim();
    let is_link = (link.starts_with("https://") || link.starts_with("http://"))
        && !link.contains(char::is_whitespace);
    let path = link.split(['?', '#']).next().unwrap_or_default();
    let lower = path.to_ascii_lowercase();
    let is_picture = [".png", ".jpg", ".jpeg", ".gif"]
        .iter()
        .any(|ext| lower.ends_with(ext));
    (is_link && is_picture).then(|| link.to_owned())
}

#[async_trait]
impl Courier for ChannelCourier {
    fn delivers(&self, endpoint: &str) -> bool {
        endpoint
            .strip_prefix(engine::outbox::CHANNEL_ENDPOINT_PREFIX)
            .is_some_and(|account| self.channels.get(account).is_some())
    }

    async fn deliver(&self, entry: &OutboxEntry) -> Result<(), DeliveryError> {
        let Some(adapter) = self.adapter(entry) else {
            return Err(DeliveryError(format!(
                "no channel account for `{}`",
                entry.endpoint
            )));
        };
        let account = adapter.account().clone();
        let Ok(reply) = serde_json::from_str::<ChannelReply>(&entry.payload) else {
            // Written by this program: only a corrupt row gets here. Parked
            // dead by the retries, for an operator to look at.
            return Err(DeliveryError(format!(
                "outbox entry {} does not hold a reply",
                entry.id
            )));
        };
        let message = OutboundMessage {
            delivery_id: reply.delivery_id(),
            external_id: reply.to.clone(),
            text: reply.text.clone(),
            image_url: image_url(&reply.text),
            seq: reply.seq,
            reply_context: reply.context.clone(),
        };
        match adapter.deliver(message).await {
            Ok(delivery) => {
                debug!(session_id = %reply.session, seq = reply.seq, account = %account.name, platform_id = delivery.platform_message_id.as_deref().unwrap_or(""), "reply delivered to the platform");
                count(&account.name, "sent");
                metrics::counter!(
                    crate::rest::channel_inbound::MESSAGES_TOTAL,
                    "account" => account.name.clone(),
                    "channel" => account.channel.to_string(),
                    "direction" => "out"
                )
                .increment(1);
                let waited_ms = engine::now_millis().saturating_sub(entry.created_at);
                metrics::histogram!(DELIVERY_SECONDS, "account" => account.name.clone())
                    .record(waited_ms as f64 / 1000.0);
                self.report(&reply, &account.name, DeliveryState::Sent, None, None)
                    .await;
                Ok(())
            }
            Err(DeliveryFailure::Retry { reason }) => {
                warn!(session_id = %reply.session, seq = reply.seq, account = %account.name, attempts = entry.attempts + 1, reason, "a reply could not be delivered for now; the outbox retries it");
                count(&account.name, "retry");
                if entry.attempts == 0 {
                    self.report(
                        &reply,
                        &account.name,
                        DeliveryState::Retrying,
                        None,
                        Some(reason.clone()),
                    )
                    .await;
                }
                Err(DeliveryError(reason))
            }
            Err(DeliveryFailure::Refused { code, reason }) => {
                warn!(session_id = %reply.session, seq = reply.seq, account = %account.name, code, reason, "the platform refused a reply");
                count(&account.name, "refused");
                count_error(&account.name, &code);
                self.report(
                    &reply,
                    &account.name,
                    DeliveryState::Failed,
                    Some(code),
                    Some(reason),
                )
                .await;
                Ok(())
            }
            Err(failure @ DeliveryFailure::NotSupported(_)) => {
                count(&account.name, "refused");
                count_error(&account.name, "not_supported");
                self.report(
                    &reply,
                    &account.name,
                    DeliveryState::Failed,
                    Some("not_supported".into()),
                    Some(failure.to_string()),
                )
                .await;
                Ok(())
            }
        }
    }

    async fn gave_up(&self, entry: &OutboxEntry) {
        let (Some(account), Ok(reply)) = (
            entry.channel_account(),
            serde_json::from_str::<ChannelReply>(&entry.payload),
        ) else {
            return;
        };
        warn!(session_id = %reply.session, seq = reply.seq, account, attempts = entry.attempts, "a reply was not delivered: every retry failed");
        count(account, "dead");
        count_error(account, "retries_exhausted");
        let reason = format!(
            "not delivered after {} attempts; the last: {}",
            entry.attempts,
            entry.last_error.as_deref().unwrap_or("unknown")
        );
        self.report(
            &reply,
            account,
            DeliveryState::Failed,
            Some("retries_exhausted".into()),
            Some(reason),
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_that_is_one_picture_link_is_an_image() {
        for (text, expected) in [
            ("https://cdn.example.com/a/receipt.png", true),
            ("  http://x.test/p.JPG?size=2  ", true),
            ("https://x.test/p.jpeg#top", true),
            ("https://x.test/doc.pdf", false),
            ("see https://x.test/p.png", false),
            ("ftp://x.test/p.png", false),
            ("https://x.test/p.png and more", false),
            ("您好", false),
        ] {
            assert_eq!(image_url(text).is_some(), expected, "{text:?}");
        }
    }
}
