//! Actor tests: the whole system over a real store, driven through the
//! [`Switchboard`] handle. Timing tests run on tokio's paused clock over the
//! in-memory store (a file's IO happens outside the runtime, and the paused
//! clock would jump past timers while it is in flight); crash tests use a
//! real SQLite file.

use std::sync::Arc;
use std::time::Duration;

use engine::Millis;
use engine::agent::{Agent, Capacity, Role};
use engine::channel::{Channel, ChannelRegistry};
use engine::customer::{Customer, Identity};
use engine::envelope::Envelope;
use engine::group::SkillGroup;
use engine::ids::{AgentId, CustomerId, GroupId, SessionId};
use engine::message::Sender;
use engine::presence::PresenceRequest;
use engine::routing::RuleSet;
use engine::session::SessionState;
use store::{MemoryStore, SqliteStore, Store, WriteOp};
use tokio::time::timeout;

use crate::{Ack, ApiError, Event, EventKind, RuntimeConfig, Switchboard, TransferTarget};

mod call;
mod cluster;
mod conversation;
mod customer;
mod directory;
mod passivation;
mod platform;
mod queue;
mod race;
mod reports;
mod routing;

use store::testing::{Failure, TestStore};

const RULES: &str = r#"
[[rule]]
name = "vip"
filter = 'customer.tier == "vip"'
  [[rule.step]]
  sticky = true
  group = "gold_service"
  timeout = "20s"
  [[rule.step]]
  group = "gold_service"
  timeout = "30s"
  [[rule.step]]
  group = "default"

[[rule]]
name = "everyone_else"
filter = "true"
  [[rule.step]]
  group = "default"
"#;

fn agent(id: &str, groups: &[&str]) -> Agent {
    Agent {
        id: AgentId::new(id),
        display_name: id.to_uppercase(),
        role: Role::Expert,
        skills: Default::default(),
        groups: groups.iter().map(GroupId::new).collect(),
        languages: vec!["zh-CN".into()],
        capacity: Capacity::default(),
        sip: None,
    }
}

fn config() -> RuntimeConfig {
    RuntimeConfig {
        offer_timeout: Duration::from_secs(15),
        wrap_up: Duration::ZERO,
        passivate_after: Duration::from_secs(600),
        n_session_shards: 2,
        ..RuntimeConfig::default()
    }
}

/// Groups gold_service and default; ann and bob in default, gina in
/// gold_service; customers: vip (tier vip, on web and wechat) and plain.
async fn start(store: Arc<dyn Store>, config: RuntimeConfig) -> Switchboard {
    seed(store.as_ref()).await;
    let rules = RuleSet::parse(RULES, "test.toml").unwrap();
    Switchboard::start(store, rules, ChannelRegistry::default(), config)
        .await
        .unwrap()
}

/// What [`start`] starts over.
async fn seed(store: &dyn Store) {
    let groups = vec![
        SkillGroup::new("gold_service", "Gold"),
        SkillGroup::new("default", "Default"),
    ];
    let agents = vec![
        agent("ann", &["default"]),
        agent("bob", &["default"]),
        agent("gina", &["gold_service"]),
    ];
    let mut vip = Customer::new("vip", "Wang Fang");
    vip.tier = "vip".into();
    vip.identities = vec![
        Identity {
            channel: Channel::Web,
            external_id: "v-web".into(),
        },
        Identity {
            channel: Channel::Wechat,
            external_id: "v-wx".into(),
        },
        Identity {
            channel: Channel::Phone,
            external_id: "+8613900000009".into(),
        },
    ];
    let mut plain = Customer::new("plain", "Li Lei");
    plain.identities = vec![Identity {
        channel: Channel::Web,
        external_id: "p-web".into(),
    }];
    Switchboard::seed(store, agents, groups, vec![vip, plain])
        .await
        .unwrap();
}

fn envelope(channel: Channel, external_id: &str, text: &str, client_id: &str) -> Envelope {
    Envelope {
        channel,
        customer_id: external_id.into(),
        message: text.into(),
        timestamp: chrono::Utc::now(),
        client_message_id: Some(client_id.into()),
        display_name: None,
    }
}

fn id(name: &str) -> AgentId {
    AgentId::new(name)
}

async fn available(board: &Switchboard, agents: &[&str]) {
    for agent in agents {
        board
            .set_presence(&id(agent), PresenceRequest::Available)
            .await
            .unwrap();
    }
}

/// The next event matching `wanted`, skipping others; fails after 5 minutes of (paused) time.
async fn next_event(
    events: &mut crate::event::Subscription,
    wanted: impl Fn(&EventKind) -> bool,
) -> Event {
    timeout(Duration::from_secs(300), async {
        loop {
            let event = events.recv().await.expect("subscription open");
            if wanted(&event.kind) {
                return std::sync::Arc::unwrap_or_clone(event);
            }
        }
    })
    .await
    .expect("event arrived")
}

fn is_offer(kind: &EventKind) -> bool {
    matches!(kind, EventKind::Offered { .. })
}

async fn offered_session(events: &mut crate::event::Subscription) -> SessionId {
    next_event(events, is_offer).await.session
}

fn bodies(events: &[Event]) -> Vec<(u64, String)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Message { body, .. } => Some((e.seq, body.clone())),
            _ => None,
        })
        .collect()
}
