//! Signalling and call metrics, through the `metrics` facade.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `switchboard_sip_requests_total` | counter | `method` (requests received, retransmissions included) |
//! | `switchboard_sip_responses_total` | counter | `method` (of the request answered), `code` (responses sent, retransmissions included) |
//! | `switchboard_sip_registered_phones` | gauge | — (agents with a live registration) |
//! | `switchboard_calls_active` | gauge | — (calls answered by switchboard and not yet over) |
//! | `switchboard_calls_total` | counter | `outcome`: see [`CallOutcome`] |

use rsipstack::sip::SipMessage;
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::transaction::endpoint::MessageInspector;
use rsipstack::transport::SipAddr;

/// Requests received, by method.
pub const REQUESTS_TOTAL: &str = "switchboard_sip_requests_total";
/// Responses sent, by the method answered and the status code.
pub const RESPONSES_TOTAL: &str = "switchboard_sip_responses_total";
/// Agents whose phones are registered.
pub const REGISTERED_PHONES: &str = "switchboard_sip_registered_phones";
/// Calls up now.
pub const CALLS_ACTIVE: &str = "switchboard_calls_active";
/// Calls by how they ended.
pub const CALLS_TOTAL: &str = "switchboard_calls_total";

/// How a call that reached switchboard ended (the `outcome` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// An agent's phone answered it.
    Answered,
    /// The caller hung up before any agent answered.
    Abandoned,
    /// Refused before it was queued: 488 (no usable codec) or 503 (no
    /// port, the runtime refused it).
    Refused,
    /// Lost without a hang-up (no ACK, the session's events lost, shutdown).
    Dropped,
}

impl CallOutcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Answered => "answered",
            CallOutcome::Abandoned => "abandoned",
            CallOutcome::Refused => "refused",
            CallOutcome::Dropped => "dropped",
        }
    }

    /// Every outcome, for series that exist from the start.
    pub const ALL: [CallOutcome; 4] = [
        CallOutcome::Answered,
        CallOutcome::Abandoned,
        CallOutcome::Refused,
        CallOutcome::Dropped,
    ];
}

/// Counts one ended call.
pub(crate) fn call_ended(outcome: CallOutcome) {
    metrics::counter!(CALLS_TOTAL, "outcome" => outcome.as_str()).increment(1);
}

/// Registers the series a dashboard reads at zero, so that a server that
/// has not carried a call yet shows 0 rather than "No data".
pub fn describe() {
    for outcome in CallOutcome::ALL {
        metrics::counter!(CALLS_TOTAL, "outcome" => outcome.as_str()).increment(0);
    }
    // Added to, not set: a second call (another server in the same
    // process) must not wipe out what is counted.
    metrics::gauge!(CALLS_ACTIVE).increment(0.0);
    metrics::gauge!(REGISTERED_PHONES).increment(0.0);
}

/// Counts what the endpoint sends and receives, as rsipstack passes each
/// message through it.
pub(crate) struct SipCounter;

impl MessageInspector for SipCounter {
    fn before_send(&self, message: SipMessage, _destination: Option<&SipAddr>) -> SipMessage {
        if let SipMessage::Response(response) = &message {
            let method = response
                .cseq_header()
                .ok()
                .and_then(|cseq| cseq.method().ok())
                .map_or_else(|| "unknown".to_owned(), |method| method.to_string());
            let code = u16::from(response.status_code.clone()).to_string();
            metrics::counter!(RESPONSES_TOTAL, "method" => method, "code" => code).increment(1);
        }
        message
    }

    fn after_received(&self, message: SipMessage, _from: Option<&SipAddr>) -> SipMessage {
        if let SipMessage::Request(request) = &message {
            metrics::counter!(REQUESTS_TOTAL, "method" => request.method.to_string()).increment(1);
        }
        message
    }
}
