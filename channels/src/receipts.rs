//! Delivery receipts as platforms send them: a webhook platform in
//! `{"receipts": [...]}`, an out-of-process adapter as a `receipt` frame.
//! One wire shape and one check for both.

use serde::Deserialize;

use crate::adapter::{Receipt, ReceiptStatus};
use crate::error::ChannelError;
use crate::limits;

/// The most characters of a platform's code or reason kept for the agent.
pub(crate) const MAX_REASON_CHARS: usize = 200;

/// One receipt on the wire.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WireReceipt {
    /// The bridge frame's `type` (`receipt`); absent in a webhook body.
    #[serde(default, rename = "type")]
    _type: Option<String>,
    delivery_id: String,
    status: WireReceiptStatus,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum WireReceiptStatus {
    Delivered,
    Failed,
}

impl WireReceipt {
    /// The receipt, its delivery id checked; `at` prefixes the field names
    /// in errors (`receipts[2].`, or `` for a frame).
    pub(crate) fn checked(self, at: &str) -> Result<Receipt, ChannelError> {
        limits::check_message_id(&format!("{at}delivery_id"), &self.delivery_id)?;
        let status = match self.status {
            WireReceiptStatus::Delivered => ReceiptStatus::Delivered,
            WireReceiptStatus::Failed => ReceiptStatus::Failed {
                code: short(self.code.as_deref().unwrap_or("failed")),
                reason: short(
                    self.reason
                        .as_deref()
                        .unwrap_or("the platform reports the message did not reach the customer"),
                ),
            },
        };
        Ok(Receipt {
            delivery_id: self.delivery_id,
            status,
        })
    }
}

/// At most [`MAX_REASON_CHARS`] characters of a platform's text.
pub(crate) fn short(text: &str) -> String {
    text.chars().take(MAX_REASON_CHARS).collect()
}
