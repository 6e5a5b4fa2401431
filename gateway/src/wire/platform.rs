//! The data platform's JSON: tickets, their history, the 360° view, search
//! hits, and the notices pushed to sockets ([`notice_frame`]), in the
//! conventions of [`crate::wire`]: session ids as decimal strings, times in
//! ms since the Unix epoch, authors as senders. The platform itself
//! (`actors::platform`) hands over domain values; this is their one encoding.

use actors::Notice;
use engine::ids::SessionId;
use engine::kb::{Article, SearchHit};
use engine::summary::SessionSummary;
use engine::ticket::{Ticket, TicketChange, TicketEvent};
use serde::{Deserialize, Serialize};
use store::Interaction;
use utoipa::ToSchema;

use super::event::Viewer;
use super::records::{CustomerRecord, SessionRecord};
use super::{Time, sender};

/// The serde name of a unit variant (`"high"`).
fn wire_name(value: &impl Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// A ticket.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TicketRecord {
    /// `T-` and base 36.
    pub id: String,
    /// Whose issue it is.
    pub customer_id: String,
    /// One line.
    pub subject: String,
    /// In full.
    pub description: String,
    /// `open`, `pending`, `solved` or `closed`.
    pub status: String,
    /// `low`, `normal`, `high` or `urgent`.
    pub priority: String,
    /// The agent working on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    /// The responsible group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Labels.
    pub tags: Vec<String>,
    /// Linked conversations (decimal session ids), oldest first.
    pub sessions: Vec<String>,
    /// `customer`, `agent:<id>` or `system`.
    pub created_by: String,
    /// When it was opened.
    pub created_at: Time,
    /// When it last changed.
    pub updated_at: Time,
    /// The `seq` of the newest history entry.
    pub last_seq: u64,
}

impl From<&Ticket> for TicketRecord {
    fn from(ticket: &Ticket) -> Self {
        TicketRecord {
            id: ticket.id.to_string(),
            customer_id: ticket.customer_id.to_string(),
            subject: ticket.subject.clone(),
            description: ticket.description.clone(),
            status: ticket.status.as_str().to_owned(),
            priority: wire_name(&ticket.priority),
            assignee: ticket.assignee.as_ref().map(ToString::to_string),
            group: ticket.group.as_ref().map(ToString::to_string),
            tags: ticket.tags.clone(),
            sessions: ticket.sessions.iter().map(ToString::to_string).collect(),
            created_by: sender(&ticket.created_by),
            created_at: Time(ticket.created_at),
            updated_at: Time(ticket.updated_at),
            last_seq: ticket.last_seq,
        }
    }
}

/// One entry of a ticket's history.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TicketEventRecord {
    /// From 1, one per change.
    pub seq: u64,
    /// When it happened.
    pub at: Time,
    /// `customer`, `agent:<id>` or `system`.
    pub author: String,
    /// What changed: `{"kind":"status","from":"open","to":"solved"}`,
    /// `{"kind":"comment","body":…}`, `created`, `edited`, `priority`,
    /// `assignee`, `group`, `tags`, `session_linked`.
    #[schema(value_type = Object)]
    pub change: serde_json::Value,
}

impl From<&TicketEvent> for TicketEventRecord {
    fn from(event: &TicketEvent) -> Self {
        let mut change = serde_json::to_value(&event.change).unwrap_or_default();
        if let TicketChange::SessionLinked { session } = &event.change {
            change["session"] = serde_json::Value::String(session.to_string());
        }
        TicketEventRecord {
            seq: event.seq,
            at: Time(event.at),
            author: sender(&event.author),
            change,
        }
    }
}

/// A ticket with its history.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TicketDetail {
    /// The record.
    pub ticket: TicketRecord,
    /// Every change, in `seq` order.
    pub events: Vec<TicketEventRecord>,
}

/// The `ticket` notice pushed to the customer's sockets and to every agent
/// watching the ticket: the record after the change and the new history entries.
pub fn ticket_notice(ticket: &Ticket, events: &[TicketEvent]) -> serde_json::Value {
    serde_json::json!({
        "type": "ticket",
        "ticket": TicketRecord::from(ticket),
        "events": events.iter().map(TicketEventRecord::from).collect::<Vec<_>>(),
    })
}

/// The `customer_view` notice pushed to an agent's sockets with an offer of
/// `session`.
pub fn customer_view_notice(session: SessionId, view: &CustomerView) -> serde_json::Value {
    serde_json::json!({
        "type": "customer_view",
        "session": session.to_string(),
        "view": view,
    })
}

/// The frame a platform notice is sent as.
pub fn notice_frame(notice: &Notice) -> serde_json::Value {
    match notice {
        Notice::Ticket { ticket, events } => ticket_notice(ticket, events),
        Notice::CustomerView { session, view } => {
            customer_view_notice(*session, &CustomerView::from(&**view))
        }
        Notice::PresenceForced {
            presence,
            by,
            reason,
        } => presence_forced_notice(presence, by, reason),
    }
}

/// The frame telling an agent's sockets that a supervisor set their presence.
pub fn presence_forced_notice(
    presence: &engine::presence::Presence,
    by: &engine::supervision::Actor,
    reason: &str,
) -> serde_json::Value {
    serde_json::json!({
        "type": "presence_forced",
        "presence": super::records::PresenceRecord::from(presence),
        "by": by.to_string(),
        "reason": reason,
    })
}

/// One contact in the cross-channel timeline.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InteractionRecord {
    /// When it happened.
    pub at: Time,
    /// Decimal session id.
    pub session_id: String,
    /// The channel it was on.
    pub channel: String,
    /// One line (the auto-summary's headline once written); staff only,
    /// since it starts as the agent's wrap-up note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

impl InteractionRecord {
    /// `row` as `viewer` may see it.
    pub fn new(row: &Interaction, viewer: Viewer) -> Self {
        InteractionRecord {
            at: Time(row.at),
            session_id: row.session_id.to_string(),
            channel: row.channel.to_string(),
            summary: (viewer == Viewer::Staff).then(|| row.summary.clone()),
        }
    }
}

/// An auto-summary.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SummaryRecord {
    /// Decimal session id.
    pub session_id: String,
    /// Key sentences, in conversation order.
    pub key_sentences: Vec<String>,
    /// Detected topics (`delivery`, `refund`, …).
    pub topics: Vec<String>,
    /// `resolved`, `unresolved`, `handled` or `abandoned`.
    pub outcome: String,
    /// Which summarizer wrote it.
    pub summarizer: String,
    /// When it was opened.
    pub created_at: Time,
}

impl From<&SessionSummary> for SummaryRecord {
    fn from(summary: &SessionSummary) -> Self {
        SummaryRecord {
            session_id: summary.session_id.to_string(),
            key_sentences: summary.key_sentences.clone(),
            topics: summary.topics.clone(),
            outcome: summary.outcome.as_str().to_owned(),
            summarizer: summary.summarizer.clone(),
            created_at: Time(summary.created_at),
        }
    }
}

/// The customer 360° view: profile, identities, the last 30 days on every
/// channel, recent sessions, tickets and the last summary.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CustomerView {
    /// Profile, tier, tags and identities on every channel.
    pub customer: CustomerRecord,
    /// The last 30 days across channels, newest first.
    pub interactions: Vec<InteractionRecord>,
    /// Recent sessions, newest first.
    pub sessions: Vec<SessionRecord>,
    /// Tickets, newest first.
    pub tickets: Vec<TicketRecord>,
    /// The newest auto-summary among the recent sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_summary: Option<SummaryRecord>,
}

impl From<&actors::platform::CustomerView> for CustomerView {
    /// The view's records as its reader may see them: summaries start as
    /// the agent's wrap-up note, and the last agent is a routing fact, so
    /// both are staff only, like `closed.summary` (PROTOCOL.md §2).
    fn from(view: &actors::platform::CustomerView) -> Self {
        let viewer = match view.for_staff {
            true => Viewer::Staff,
            false => Viewer::Customer,
        };
        let staff = viewer == Viewer::Staff;
        CustomerView {
            customer: CustomerRecord {
                last_agent: CustomerRecord::from(&view.customer)
                    .last_agent
                    .filter(|_| staff),
                ..CustomerRecord::from(&view.customer)
            },
            interactions: view
                .interactions
                .iter()
                .map(|row| InteractionRecord::new(row, viewer))
                .collect(),
            sessions: view
                .sessions
                .iter()
                .map(|session| SessionRecord::new(session, viewer))
                .collect(),
            tickets: view.tickets.iter().map(TicketRecord::from).collect(),
            last_summary: view
                .last_summary
                .as_ref()
                .filter(|_| staff)
                .map(SummaryRecord::from),
        }
    }
}

/// A knowledge-base article.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ArticleRecord {
    /// `a-z`, `0-9`, `-`.
    pub id: String,
    /// BCP 47 (`zh-CN`, `en`).
    pub language: String,
    /// One line.
    pub title: String,
    /// The text.
    pub body: String,
    /// Labels.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Set by the server.
    #[serde(default, skip_deserializing)]
    #[schema(read_only)]
    pub updated_at: Time,
}

impl From<&Article> for ArticleRecord {
    fn from(article: &Article) -> Self {
        ArticleRecord {
            id: article.id.to_string(),
            language: article.language.clone(),
            title: article.title.clone(),
            body: article.body.clone(),
            tags: article.tags.clone(),
            updated_at: Time(article.updated_at),
        }
    }
}

/// One search result.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SearchHitRecord {
    /// The article.
    pub id: String,
    /// Its title.
    pub title: String,
    /// Its language.
    pub language: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// Relevance, comparable within one search only.
    pub score: f32,
    /// Body fragment around the matches: HTML-escaped, matches in `<b>`.
    pub snippet: String,
}

impl From<SearchHit> for SearchHitRecord {
    fn from(hit: SearchHit) -> Self {
        SearchHitRecord {
            id: hit.id.to_string(),
            title: hit.title,
            language: hit.language,
            tags: hit.tags,
            score: hit.score,
            snippet: hit.snippet,
        }
    }
}
