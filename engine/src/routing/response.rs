//! Response targets per conversation (docs/routing.md, "Response targets"):
//! how long an agent may take to send the first reply, and each next reply
//! once the customer wrote again, by group and channel. The rule file's
//! `[[response]]` tables, first match wins; 30 s and 30 s when none
//! matches. A target may run on a business-hours calendar of the file: its
//! clock stops outside those hours.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::RuleSet;
use super::hours::Schedule;
use crate::Millis;
use crate::channel::Channel;
use crate::ids::GroupId;

/// The first and next response targets where no `[[response]]` matches.
pub const DEFAULT_RESPONSE_MS: Millis = 30_000;

/// One `[[response]]` table, loaded.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ResponseRule {
    /// Only contacts in this group; any when `None`.
    pub(super) group: Option<GroupId>,
    /// Only contacts on this channel (its name); any when `None`.
    pub(super) channel: Option<Arc<str>>,
    pub(super) first_ms: Millis,
    pub(super) next_ms: Millis,
    /// The calendar whose hours the clock runs in; always when `None`.
    pub(super) calendar: Option<usize>,
}

/// Which reply an agent owes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseKind {
    /// The first agent reply of the conversation.
    First,
    /// A reply after the customer wrote again.
    Next,
}

impl ResponseKind {
    /// The name on the wire and in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseKind::First => "first",
            ResponseKind::Next => "next",
        }
    }
}

/// The response targets of one conversation, with the clock they run on.
#[derive(Debug, Clone)]
pub struct ResponsePolicy {
    /// The first reply is due this long after an agent first accepted.
    pub first_ms: Millis,
    /// A next reply is due this long after the customer's oldest message
    /// not yet answered.
    pub next_ms: Millis,
    schedule: Arc<Schedule>,
    calendar: Option<usize>,
}

impl ResponsePolicy {
    /// How long a reply of `kind` may take, on its clock.
    pub fn target_ms(&self, kind: ResponseKind) -> Millis {
        match kind {
            ResponseKind::First => self.first_ms,
            ResponseKind::Next => self.next_ms,
        }
    }

    /// When a reply of `kind` that the customer has waited for since
    /// `since` is due: the target later, counting only the calendar's open
    /// hours when the target has one.
    pub fn due(&self, kind: ResponseKind, since: Millis) -> Millis {
        let target = self.target_ms(kind);
        match self.calendar {
            Some(index) => self.schedule.add_open_time(index, since, target),
            None => since.saturating_add(target),
        }
    }

    /// The business-hours calendar the clock runs on, if any.
    pub fn calendar(&self) -> Option<&str> {
        self.calendar
            .and_then(|index| self.schedule.calendars.get(index))
            .map(|calendar| calendar.name.as_str())
    }
}

impl RuleSet {
    /// The response targets of a conversation in `group` on `channel`.
    pub fn response_policy(&self, group: Option<&GroupId>, channel: &Channel) -> ResponsePolicy {
        let matched = self.inner.responses.iter().find(|rule| {
            rule.group
                .as_ref()
                .is_none_or(|wanted| Some(wanted) == group)
                && rule
                    .channel
                    .as_deref()
                    .is_none_or(|wanted| wanted == channel.as_str())
        });
        ResponsePolicy {
            first_ms: matched.map_or(DEFAULT_RESPONSE_MS, |rule| rule.first_ms),
            next_ms: matched.map_or(DEFAULT_RESPONSE_MS, |rule| rule.next_ms),
            schedule: Arc::clone(&self.inner.schedule),
            calendar: matched.and_then(|rule| rule.calendar),
        }
    }
}
