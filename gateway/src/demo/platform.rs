//! The data platform's demo data: a bilingual knowledge base, reply
//! templates and tickets, from the TOML files in `gateway/demo/` (compiled
//! into the binary, so `cargo run` needs nothing beside it).

use anyhow::{Context, Result, bail};
use engine::Millis;
use engine::assist::ReplyTemplate;
use engine::channel::Channel;
use engine::ids::{AgentId, CustomerId, GroupId, SessionIdGen, TicketIdGen};
use engine::kb::Article;
use engine::message::{Sender, StoredMessage};
use engine::session::{Session, SessionState};
use engine::ticket::{NewTicket, Priority, Ticket, TicketStatus, TicketUpdate};
use serde::Deserialize;
use store::{Interaction, WriteOp};

/// The demo knowledge base.
pub const KB_TOML: &str = include_str!("../../demo/kb.toml");
/// The demo reply templates.
pub const TEMPLATES_TOML: &str = include_str!("../../demo/templates.toml");
/// The demo tickets.
pub const TICKETS_TOML: &str = include_str!("../../demo/tickets.toml");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KbFile {
    article: Vec<Article>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplatesFile {
    template: Vec<ReplyTemplate>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TicketsFile {
    ticket: Vec<DemoTicket>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DemoTicket {
    customer: String,
    subject: String,
    description: String,
    status: TicketStatus,
    priority: Priority,
    group: Option<String>,
    assignee: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
}

/// Articles of a knowledge-base file (`[[article]]` tables), validated.
pub fn parse_articles(text: &str, now: Millis) -> Result<Vec<Article>> {
    let file: KbFile = toml::from_str(text).context("failed to parse the knowledge base")?;
    file.article
        .into_iter()
        .map(|mut article| {
            article.updated_at = now;
            let id = article.id.clone();
            article
                .validated()
                .with_context(|| format!("article `{id}`"))
        })
        .collect()
}

/// Templates of a template file (`[[template]]` tables), validated.
pub fn parse_templates(text: &str, now: Millis) -> Result<Vec<ReplyTemplate>> {
    let file: TemplatesFile = toml::from_str(text).context("failed to parse the templates")?;
    file.template
        .into_iter()
        .map(|mut template| {
            template.updated_at = now;
            let id = template.id.clone();
            template
                .validated()
                .with_context(|| format!("template `{id}`"))
        })
        .collect()
}

/// The demo tickets as the ops that store them: each opened by its assignee
/// (or the system), then moved to its demo status, with its history.
fn ticket_ops(now: Millis) -> Result<Vec<WriteOp>> {
    let file: TicketsFile =
        toml::from_str(TICKETS_TOML).context("failed to parse the demo tickets")?;
    let mut ids = TicketIdGen::new(0);
    let mut ops = Vec::new();
    for (idx, demo) in file.ticket.into_iter().enumerate() {
        // Older tickets first, an hour apart, so the demo has a history.
        let opened_at = now - (10 - idx as Millis) * 3_600_000;
        let author = demo
            .assignee
            .as_deref()
            .map_or(Sender::System, |agent| Sender::Agent(AgentId::new(agent)));
        let new = NewTicket {
            subject: demo.subject,
            description: demo.description,
            priority: Some(demo.priority),
            assignee: demo.assignee.map(AgentId::new),
            group: demo.group.map(GroupId::new),
            tags: demo.tags,
            session: None,
        };
        let (mut ticket, created) = Ticket::open(
            ids.next(opened_at),
            CustomerId::new(demo.customer),
            new,
            author.clone(),
            opened_at,
        )?;
        let mut events = vec![created];
        let path: &[TicketStatus] = match demo.status {
            TicketStatus::Open => &[],
            TicketStatus::Pending => &[TicketStatus::Pending],
            TicketStatus::Solved => &[TicketStatus::Solved],
            TicketStatus::Closed => &[TicketStatus::Solved, TicketStatus::Closed],
        };
        for (step, status) in path.iter().enumerate() {
            let update = TicketUpdate {
                status: Some(*status),
                ..TicketUpdate::default()
            };
            let at = opened_at + (step as Millis + 1) * 600_000;
            events.extend(ticket.apply(update, author.clone(), at)?);
        }
        ops.push(WriteOp::PutTicket(ticket));
        ops.extend(events.into_iter().map(WriteOp::AppendTicketEvent));
    }
    Ok(ops)
}

/// Everything the data platform's demo writes.
pub fn ops(now: Millis) -> Result<Vec<WriteOp>> {
    let mut ops: Vec<WriteOp> = parse_articles(KB_TOML, now)?
        .into_iter()
        .map(WriteOp::PutArticle)
        .collect();
    ops.extend(
        parse_templates(TEMPLATES_TOML, now)?
            .into_iter()
            .map(WriteOp::PutTemplate),
    );
    ops.extend(ticket_ops(now)?);
    ops.extend(history_ops(now));
    let n_articles = ops
        .iter()
        .filter(|op| matches!(op, WriteOp::PutArticle(_)))
        .count();
    if n_articles < 20 {
        bail!("the demo knowledge base has {n_articles} articles; it should have at least 20");
    }
    Ok(ops)
}

/// A past conversation of the demo: (customer, channel, days ago, group,
/// agent, wrap-up note, lines by the customer (`true`) or the agent).
type PastConversation = (
    &'static str,
    Channel,
    i64,
    &'static str,
    &'static str,
    &'static str,
    &'static [(bool, &'static str)],
);

/// What the VIP wrote on WeChat and on the web before she calls: the
/// agent who takes her call sees it in the 360° view.
const HISTORY: [PastConversation; 2] = [
    (
        "cust-vip-001",
        Channel::Wechat,
        1,
        "gold_service",
        "li.na",
        "订单 A1029 物流延迟，已催仓库，承诺明天发货",
        &[
            (true, "你好，我的订单 A1029 三天了还没发货，怎么回事？"),
            (
                false,
                "王女士您好，我查一下：仓库备货延迟，我已经催办，明天一定发出。",
            ),
            (true, "好的，明天还没发我就打电话来。"),
        ],
    ),
    (
        "cust-vip-001",
        Channel::Web,
        6,
        "default",
        "chen.jie",
        "Asked to change the delivery address of A1029; changed",
        &[
            (
                true,
                "Can I still change the delivery address of order A1029?",
            ),
            (
                false,
                "Yes, it has not shipped yet. What is the new address?",
            ),
            (true, "18 Huaihai Road, Shanghai. Thanks!"),
        ],
    ),
];

/// The demo's past conversations as closed sessions with their messages
/// and history entries, days before `now`.
fn history_ops(now: Millis) -> Vec<WriteOp> {
    const DAY: Millis = 24 * 3600 * 1000;
    let mut ids = SessionIdGen::new(0);
    let mut ops = Vec::new();
    for (customer, channel, days_ago, group, agent, note, lines) in HISTORY {
        let start = now - days_ago * DAY;
        let id = ids.next(start);
        let agent = AgentId::new(agent);
        let mut session = Session::new(id, CustomerId::new(customer), channel.clone(), start);
        session.state = SessionState::Closed;
        session.group = Some(GroupId::new(group));
        session.agent = Some(agent.clone());
        session.times.queued = Some(start);
        session.times.offered = Some(start + 2_000);
        session.times.answered = Some(start + 4_000);
        session.times.first_response = Some(start + 30_000);
        let closed = start + 60_000 * (lines.len() as Millis + 1);
        session.times.wrap_up = Some(closed);
        session.times.closed = Some(closed);
        session.summary = Some(note.to_owned());
        for (idx, (from_customer, body)) in lines.iter().enumerate() {
            ops.push(WriteOp::AppendMessage(StoredMessage {
                session_id: id,
                seq: idx as u64 + 1,
                sender: match from_customer {
                    true => Sender::Customer,
                    false => Sender::Agent(agent.clone()),
                },
                body: (*body).to_owned(),
                client_message_id: None,
                channel: channel.clone(),
                at: start + 60_000 * idx as Millis,
            }));
        }
        session.last_seq = lines.len() as u64;
        ops.push(WriteOp::RecordInteraction(Interaction {
            customer_id: session.customer_id.clone(),
            at: closed,
            session_id: id,
            channel,
            summary: note.to_owned(),
        }));
        ops.push(WriteOp::PutSession(session));
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_files_parse_and_validate() {
        let ops = ops(1_764_000_000_000).unwrap();
        let count = |f: fn(&WriteOp) -> bool| ops.iter().filter(|op| f(op)).count();
        assert!(count(|op| matches!(op, WriteOp::PutArticle(_))) >= 20);
        assert!(count(|op| matches!(op, WriteOp::PutTemplate(_))) >= 10);
        let tickets: Vec<&Ticket> = ops
            .iter()
            .filter_map(|op| match op {
                WriteOp::PutTicket(ticket) => Some(ticket),
                _ => None,
            })
            .collect();
        assert!(tickets.len() >= 5);
        // The VIP's past WeChat and web conversations, closed, with messages.
        let past: Vec<&engine::session::Session> = ops
            .iter()
            .filter_map(|op| match op {
                WriteOp::PutSession(session) => Some(session),
                _ => None,
            })
            .collect();
        let channels: Vec<&Channel> = past.iter().map(|session| &session.channel).collect();
        assert_eq!(channels, vec![&Channel::Wechat, &Channel::Web]);
        assert!(past.iter().all(|session| session.state.is_final()));
        assert_eq!(
            count(|op| matches!(op, WriteOp::AppendMessage(_))),
            past.iter()
                .map(|session| session.last_seq as usize)
                .sum::<usize>()
        );
        assert!(tickets.iter().any(|t| t.status == TicketStatus::Closed));
        let languages: std::collections::BTreeSet<String> = ops
            .iter()
            .filter_map(|op| match op {
                WriteOp::PutArticle(article) => Some(article.language.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(
            languages.into_iter().collect::<Vec<_>>(),
            vec!["en", "zh-CN"]
        );
    }

    #[test]
    fn bad_files_name_the_article() {
        let bad = "[[article]]\nid = \"Bad Id\"\nlanguage = \"en\"\ntitle = \"t\"\nbody = \"b\"\n";
        let err = format!("{:#}", parse_articles(bad, 0).unwrap_err());
        assert!(
            err.contains("article `Bad Id`") && err.contains("invalid `id`"),
            "{err}"
        );
    }
}
