//! Tickets: a customer's issue that outlives one conversation.
//!
//! A ticket changes only through [`Ticket::apply`], which validates a
//! [`TicketUpdate`] and returns the [`TicketChange`]s it made; each change
//! becomes one [`TicketEvent`] of the ticket's append-only history, numbered
//! by the ticket's own `seq` (as messages are numbered by their session's).

use serde::{Deserialize, Serialize};

use crate::error::EngineError;
use crate::ids::{AgentId, CustomerId, GroupId, SessionId, TicketId};
use crate::message::Sender;
use crate::{Millis, text};

/// Longest subject, in characters.
pub const MAX_SUBJECT_CHARS: usize = 200;
/// Longest description or comment, in characters.
pub const MAX_TEXT_CHARS: usize = 10_000;
/// Most tags on one ticket.
pub const MAX_TAGS: usize = 32;
/// Longest tag, in characters.
pub const MAX_TAG_CHARS: usize = 64;
/// Most sessions linked to one ticket.
pub const MAX_LINKED_SESSIONS: usize = 100;

/// Where a ticket stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    /// Someone has to act.
    Open,
    /// Waiting on the customer or a third party.
    Pending,
    /// The agent considers it done; the customer may reopen it.
    Solved,
    /// Final: nobody changes it any more.
    Closed,
}

impl TicketStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            TicketStatus::Open => "open",
            TicketStatus::Pending => "pending",
            TicketStatus::Solved => "solved",
            TicketStatus::Closed => "closed",
        }
    }

    /// Parses a wire name.
    pub fn parse(name: &str) -> Option<TicketStatus> {
        [
            TicketStatus::Open,
            TicketStatus::Pending,
            TicketStatus::Solved,
            TicketStatus::Closed,
        ]
        .into_iter()
        .find(|status| status.as_str() == name)
    }
}

/// How urgent a ticket is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// When there is time.
    Low,
    /// The default.
    Normal,
    /// Before normal ones.
    High,
    /// Now.
    Urgent,
}

/// A ticket as stored and shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// Id.
    pub id: TicketId,
    /// Whose issue it is; only they (and staff) see it.
    pub customer_id: CustomerId,
    /// One line.
    pub subject: String,
    /// The issue in full.
    pub description: String,
    /// Where it stands.
    pub status: TicketStatus,
    /// How urgent.
    pub priority: Priority,
    /// The agent working on it.
    pub assignee: Option<AgentId>,
    /// The group responsible for it.
    pub group: Option<GroupId>,
    /// Free-form labels.
    pub tags: Vec<String>,
    /// Conversations about it, oldest first.
    pub sessions: Vec<SessionId>,
    /// Who opened it.
    pub created_by: Sender,
    /// When it was opened.
    pub created_at: Millis,
    /// When it last changed.
    pub updated_at: Millis,
    /// The `seq` of its newest event.
    pub last_seq: u64,
}

/// A new ticket's fields, as its creator gave them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewTicket {
    /// One line; required.
    pub subject: String,
    /// The issue in full.
    pub description: String,
    /// Defaults to normal.
    pub priority: Option<Priority>,
    /// The agent working on it.
    pub assignee: Option<AgentId>,
    /// The group responsible for it.
    pub group: Option<GroupId>,
    /// Labels.
    pub tags: Vec<String>,
    /// The conversation it came from.
    pub session: Option<SessionId>,
}

/// A change to a ticket: every field that is `Some` changes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TicketUpdate {
    /// New subject.
    pub subject: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New status.
    pub status: Option<TicketStatus>,
    /// New priority.
    pub priority: Option<Priority>,
    /// New assignee (`Some(None)` unassigns).
    pub assignee: Option<Option<AgentId>>,
    /// New group (`Some(None)` clears it).
    pub group: Option<Option<GroupId>>,
    /// The full new tag list.
    pub tags: Option<Vec<String>>,
    /// One more linked conversation.
    pub link_session: Option<SessionId>,
    /// A comment added to the history.
    pub comment: Option<String>,
}

impl TicketUpdate {
    /// What a customer may do to their own ticket: comment, close it, or
    /// reopen it once solved. Everything else is for staff; the error names
    /// the first field a customer may not set.
    pub fn check_customer_may(&self, ticket: &Ticket) -> Result<(), EngineError> {
        let staff_only = [
            ("subject", self.subject.is_some()),
            ("description", self.description.is_some()),
            ("priority", self.priority.is_some()),
            ("assignee", self.assignee.is_some()),
            ("group", self.group.is_some()),
            ("tags", self.tags.is_some()),
            ("link_session", self.link_session.is_some()),
        ];
        if let Some((field, _)) = staff_only.iter().find(|(_, set)| *set) {
            return Err(EngineError::Invalid {
                field,
                reason: "customers may only comment on, reopen or close their tickets".into(),
            });
        }
        match (ticket.status, self.status) {
            (_, None | Some(TicketStatus::Closed)) => Ok(()),
            (TicketStatus::Solved, Some(TicketStatus::Open)) => Ok(()),
            (from, Some(to)) => Err(EngineError::Invalid {
                field: "status",
                reason: format!(
                    "a customer may reopen a solved ticket or close one, not move it from {} to {}",
                    from.as_str(),
                    to.as_str()
                ),
            }),
        }
    }
}

/// One entry of a ticket's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketEvent {
    /// The ticket.
    pub ticket_id: TicketId,
    /// Its place in the history, from 1.
    pub seq: u64,
    /// When.
    pub at: Millis,
    /// Who made the change.
    pub author: Sender,
    /// What changed.
    pub change: TicketChange,
}

/// What one event changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TicketChange {
    /// The ticket was opened.
    Created {
        /// Its subject then.
        subject: String,
    },
    /// New subject or description.
    Edited {
        /// The field that changed (`subject` or `description`).
        field: String,
        /// Its new value.
        value: String,
    },
    /// Status moved.
    Status {
        /// Before.
        from: TicketStatus,
        /// After.
        to: TicketStatus,
    },
    /// Priority moved.
    Priority {
        /// Before.
        from: Priority,
        /// After.
        to: Priority,
    },
    /// Someone else works on it.
    Assignee {
        /// Before.
        from: Option<AgentId>,
        /// After.
        to: Option<AgentId>,
    },
    /// Another group is responsible.
    Group {
        /// Before.
        from: Option<GroupId>,
        /// After.
        to: Option<GroupId>,
    },
    /// The tag list changed.
    Tags {
        /// The new list.
        tags: Vec<String>,
    },
    /// A conversation was linked.
    SessionLinked {
        /// The session.
        session: SessionId,
    },
    /// A comment.
    Comment {
        /// The text.
        body: String,
    },
}

impl Ticket {
    /// Opens a ticket: the record and its `created` event (seq 1).
    pub fn open(
        id: TicketId,
        customer_id: CustomerId,
        new: NewTicket,
        author: Sender,
        now: Millis,
    ) -> Result<(Ticket, TicketEvent), EngineError> {
        let subject = text::required("subject", &new.subject, MAX_SUBJECT_CHARS)?;
        text::bounded("description", &new.description, MAX_TEXT_CHARS)?;
        let tags = text::tags("tags", new.tags, MAX_TAGS, MAX_TAG_CHARS)?;
        let ticket = Ticket {
            id: id.clone(),
            customer_id,
            subject: subject.clone(),
            description: new.description,
            status: TicketStatus::Open,
            priority: new.priority.unwrap_or(Priority::Normal),
            assignee: new.assignee,
            group: new.group,
            tags,
            sessions: new.session.into_iter().collect(),
            created_by: author.clone(),
            created_at: now,
            updated_at: now,
            last_seq: 1,
        };
        let event = TicketEvent {
            ticket_id: id,
            seq: 1,
            at: now,
            author,
            change: TicketChange::Created { subject },
        };
        Ok((ticket, event))
    }

    /// Applies `update`: either every change and one event per change, or an
    /// error naming the bad field and no change at all. An update that
    /// changes nothing gives no events.
    pub fn apply(
        &mut self,
        update: TicketUpdate,
        author: Sender,
        now: Millis,
    ) -> Result<Vec<TicketEvent>, EngineError> {
        if self.status == TicketStatus::Closed {
            return Err(EngineError::Invalid {
                field: "status",
                reason: format!("ticket {} is closed and cannot change", self.id),
            });
        }
        let changes = self.plan(update)?;
        let mut events = Vec::with_capacity(changes.len());
        for change in changes {
            self.record(&change);
            self.last_seq += 1;
            events.push(TicketEvent {
                ticket_id: self.id.clone(),
                seq: self.last_seq,
                at: now,
                author: author.clone(),
                change,
            });
        }
        if !events.is_empty() {
            self.updated_at = now;
        }
        Ok(events)
    }

    /// Validates every field first, so that a bad one changes nothing.
    fn plan(&self, update: TicketUpdate) -> Result<Vec<TicketChange>, EngineError> {
        let mut changes = Vec::new();
        if let Some(subject) = update.subject {
            let subject = text::required("subject", &subject, MAX_SUBJECT_CHARS)?;
            if subject != self.subject {
                changes.push(TicketChange::Edited {
                    field: "subject".into(),
                    value: subject,
                });
            }
        }
        if let Some(description) = update.description {
            text::bounded("description", &description, MAX_TEXT_CHARS)?;
            if description != self.description {
                changes.push(TicketChange::Edited {
                    field: "description".into(),
                    value: description,
                });
            }
        }
        if let Some(to) = update.status.filter(|to| *to != self.status) {
            changes.push(TicketChange::Status {
                from: self.status,
                to,
            });
        }
        if let Some(to) = update.priority.filter(|to| *to != self.priority) {
            changes.push(TicketChange::Priority {
                from: self.priority,
                to,
            });
        }
        if let Some(to) = update.assignee.filter(|to| *to != self.assignee) {
            changes.push(TicketChange::Assignee {
                from: self.assignee.clone(),
                to,
            });
        }
        if let Some(to) = update.group.filter(|to| *to != self.group) {
            changes.push(TicketChange::Group {
                from: self.group.clone(),
                to,
            });
        }
        if let Some(tags) = update.tags {
            let tags = text::tags("tags", tags, MAX_TAGS, MAX_TAG_CHARS)?;
            if tags != self.tags {
                changes.push(TicketChange::Tags { tags });
            }
        }
        if let Some(session) = update.link_session
            && !self.sessions.contains(&session)
        {
            if self.sessions.len() >= MAX_LINKED_SESSIONS {
                return Err(EngineError::Invalid {
                    field: "link_session",
                    reason: format!("a ticket links at most {MAX_LINKED_SESSIONS} sessions"),
                });
            }
            changes.push(TicketChange::SessionLinked { session });
        }
        if let Some(body) = update.comment {
            let body = text::required("comment", &body, MAX_TEXT_CHARS)?;
            changes.push(TicketChange::Comment { body });
        }
        Ok(changes)
    }

    fn record(&mut self, change: &TicketChange) {
        match change {
            TicketChange::Created { .. } | TicketChange::Comment { .. } => {}
            TicketChange::Edited { field, value } if field == "subject" => {
                self.subject = value.clone()
            }
            TicketChange::Edited { value, .. } => self.description = value.clone(),
            TicketChange::Status { to, .. } => self.status = *to,
            TicketChange::Priority { to, .. } => self.priority = *to,
            TicketChange::Assignee { to, .. } => self.assignee = to.clone(),
            TicketChange::Group { to, .. } => self.group = to.clone(),
            TicketChange::Tags { tags } => self.tags = tags.clone(),
            TicketChange::SessionLinked { session } => self.sessions.push(*session),
        }
    }
}

#[cfg(test)]
mod tests;
