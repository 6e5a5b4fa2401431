//! `cargo run --release`: a routed conversation on every path of the brief's
//! rules, over a real SQLite file, printed step by step. The server with its
//! WebSocket and REST API arrives with the gateway.

use std::sync::Arc;
use std::time::Duration;

use actors::{Event, EventKind, RuntimeConfig, Switchboard};
use anyhow::{Context, Result, bail};
use engine::agent::{Agent, Capacity, Role};
use engine::channel::{Channel, ChannelRegistry};
use engine::customer::{Customer, Identity};
use engine::envelope::Envelope;
use engine::group::SkillGroup;
use engine::ids::{AgentId, GroupId};
use engine::presence::PresenceRequest;
use engine::routing::RuleSet;
use engine::sla::SlaReport;
use engine::store::{SqliteStore, Store};
use tokio::sync::mpsc;

fn agent(id: &str, name: &str, role: Role, groups: &[&str], skills: &[(&str, u8)]) -> Agent {
    Agent {
        id: AgentId::new(id),
        display_name: name.into(),
        role,
        skills: skills.iter().map(|(s, p)| (s.to_string(), *p)).collect(),
        groups: groups.iter().map(GroupId::new).collect(),
        languages: vec!["zh-CN".into(), "en".into()],
        capacity: Capacity::default(),
    }
}

fn demo_data() -> (Vec<Agent>, Vec<SkillGroup>, Vec<Customer>) {
    let groups = vec![
        SkillGroup::new("gold_service", "Gold service"),
        SkillGroup::new("phone_support", "Phone support"),
        SkillGroup::new("default", "Default"),
    ];
    let agents = vec![
        agent(
            "li.na",
            "Li Na",
            Role::Expert,
            &["gold_service", "default"],
            &[("billing", 5), ("vip", 4)],
        ),
        agent(
            "zhang.wei",
            "Zhang Wei",
            Role::Expert,
            &["phone_support", "default"],
            &[("voice", 4)],
        ),
        agent(
            "chen.jie",
            "Chen Jie",
            Role::Junior,
            &["default"],
            &[("orders", 2)],
        ),
        agent(
            "wang.min",
            "Wang Min",
            Role::Supervisor,
            &["gold_service", "phone_support", "default"],
            &[("billing", 3)],
        ),
    ];
    let mut vip = Customer::new("cust-vip-001", "Wang Fang");
    vip.tier = "vip".into();
    vip.tags = vec!["repeat-buyer".into()];
    vip.identities = [
        "web:wf-visitor-77",
        "app:wf-device-5",
        "phone:+8613800000001",
        "wechat:12345",
    ]
    .iter()
    .map(|pair| {
        let (channel, id) = pair.split_once(':').expect("channel:id");
        Identity {
            channel: Channel::parse(channel).expect("built-in channel"),
            external_id: id.into(),
        }
    })
    .collect();
    let mut caller = Customer::new("cust-002", "Zhao Lei");
    caller.identities = vec![Identity {
        channel: Channel::Phone,
        external_id: "+8613900000002".into(),
    }];
    (agents, groups, vec![vip, caller])
}

fn message(channel: Channel, external_id: &str, text: &str, client_id: &str) -> Envelope {
    Envelope {
        channel,
        customer_id: external_id.into(),
        message: text.into(),
        timestamp: chrono::Utc::now(),
        client_message_id: Some(client_id.into()),
        display_name: None,
    }
}

async fn next_offer(events: &mut mpsc::Receiver<Event>) -> Result<Event> {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .context("waiting for an offer")?;
        let event = event.context("agent subscription closed")?;
        if matches!(event.kind, EventKind::Offered { .. }) {
            return Ok(event);
        }
    }
}

/// One conversation: the customer writes, the offer reaches `expected_agent`,
/// who accepts, replies and closes.
async fn conversation(
    board: &Switchboard,
    envelope: Envelope,
    expected_agent: &str,
    reply: &str,
) -> Result<()> {
    let agent = AgentId::new(expected_agent);
    let mut desk = board.subscribe_agent(&agent);
    println!(
        "\n→ {} customer `{}` writes: {}",
        envelope.channel, envelope.customer_id, envelope.message
    );
    let ack = board.customer_message(envelope.clone()).await?;
    println!("  ack: session {} seq {} (durable)", ack.session, ack.seq);
    let resent = board.customer_message(envelope).await?;
    println!(
        "  resent with the same client id: seq {} duplicate={} (stored once)",
        resent.seq, resent.duplicate
    );
    let offer = next_offer(&mut desk).await?;
    let record = board.live_session(ack.session).await?;
    let group = record.group.map(|g| g.to_string()).unwrap_or_default();
    println!(
        "  routed to `{group}`, offered to {expected_agent} (seq {})",
        offer.seq
    );
    board.accept(&agent, ack.session).await?;
    println!("  {expected_agent} accepted");
    let sent = board
        .agent_message(&agent, ack.session, reply.into(), None)
        .await?;
    println!("  {expected_agent} replies: {reply} (seq {})", sent.seq);
    board
        .close(
            &agent,
            ack.session,
            Some(format!("handled by {expected_agent}")),
        )
        .await?;
    let history = board.history(ack.session, 0).await?;
    println!("  closed; {} events stored for the session", history.len());
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .init();
    let dir = std::env::temp_dir().join(format!("switchboard-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("failed to create {}", dir.display()))?;
    let path = dir.join("switchboard.db");
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&path).with_context(|| format!("failed to open {}", path.display()))?,
    );
    println!(
        "switchboard demo — embedded SQLite store at {}",
        path.display()
    );

    let (agents, groups, customers) = demo_data();
    Switchboard::seed(store.as_ref(), agents.clone(), groups.clone(), customers).await?;
    let rules = RuleSet::default_rules();
    println!(
        "routing rules: engine/rules/default.toml (VIP → gold_service, phone → phone_support, else → default)"
    );
    let config = RuntimeConfig {
        wrap_up: Duration::ZERO,
        ..RuntimeConfig::default()
    };
    let board =
        Switchboard::start(store.clone(), rules, ChannelRegistry::default(), config).await?;
    for agent in ["li.na", "zhang.wei", "chen.jie"] {
        board
            .set_presence(&AgentId::new(agent), PresenceRequest::Available)
            .await?;
    }
    println!(
        "agents available: li.na (gold_service, default), zhang.wei (phone_support, default), chen.jie (default)"
    );

    conversation(
        &board,
        message(Channel::Wechat, "12345", "我的订单何时发货?", "wx-1"),
        "li.na",
        "您好王女士,您的订单今天下午发货。",
    )
    .await?;
    conversation(
        &board,
        message(
            Channel::Phone,
            "+8613900000002",
            "[call] billing question",
            "sip-1",
        ),
        "zhang.wei",
        "[voice] answered",
    )
    .await?;
    conversation(
        &board,
        message(
            Channel::Web,
            "visitor-9",
            "Do you ship to Shenzhen?",
            "web-1",
        ),
        "chen.jie",
        "Yes, next day.",
    )
    .await?;

    println!("\nthe VIP is one customer across channels:");
    let vip = store
        .get_customer(&"cust-vip-001".into())
        .await?
        .context("VIP missing")?;
    for identity in &vip.identities {
        println!("  {} → {}", identity, vip.id);
    }
    println!(
        "  last agent (for sticky routing next time): {}",
        vip.last_agent.map(|a| a.to_string()).unwrap_or_default()
    );

    println!("\nservice level per group:");
    for group in &groups {
        let mut sessions = Vec::new();
        for customer in ["cust-vip-001", "cust-002", "web:visitor-9"] {
            sessions.extend(store.sessions_of_customer(&customer.into(), 100).await?);
        }
        let report = SlaReport::from_sessions(group, &sessions);
        let level = report
            .total
            .service_level
            .map(|sl| format!("{:.0} %", sl * 100.0))
            .unwrap_or_else(|| "n/a".into());
        println!(
            "  {:<14} entered {} answered {} service level {level}",
            group.id.to_string(),
            report.total.n_entered,
            report.total.n_answered
        );
        if report.total.n_entered != 1 {
            bail!(
                "expected one contact in {}, found {}",
                group.id,
                report.total.n_entered
            );
        }
    }
    board.shutdown().await;
    store.close().await?;
    std::fs::remove_dir_all(&dir).ok();
    println!("\ndone. The full test suite: ./scripts/test");
    Ok(())
}
