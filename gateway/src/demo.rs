//! Demo data for `cargo run --release`: the brief's three skill groups,
//! agents with different roles, skills and capacities, and customers
//! including a VIP known on four channels; and ([`platform`]) a bilingual
//! knowledge base, reply templates and tickets. Seeded only into an empty store.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use actors::Switchboard;
use anyhow::{Context, Result};
use engine::agent::{Agent, Capacity, Role as AgentRole};
use engine::channel::Channel;
use engine::customer::{Customer, Identity};
use engine::group::SkillGroup;
use engine::ids::{AgentId, GroupId};
use store::Store;

use crate::auth::{Claims, Role, TokenSigner, unix_now};

pub mod platform;

/// A demo agent: (id, display name, role, groups, skills, chats at once).
type DemoAgent = (
    &'static str,
    &'static str,
    AgentRole,
    &'static [&'static str],
    &'static [(&'static str, u8)],
    u16,
);

/// Demo agents.
const AGENTS: [DemoAgent; 5] = [
    (
        "li.na",
        "Li Na",
        AgentRole::Expert,
        &["gold_service", "default"],
        &[("billing", 5), ("vip", 4)],
        4,
    ),
    (
        "zhang.wei",
        "Zhang Wei",
        AgentRole::Expert,
        &["phone_support", "default"],
        &[("voice", 4)],
        2,
    ),
    (
        "chen.jie",
        "Chen Jie",
        AgentRole::Junior,
        &["default"],
        &[("orders", 2)],
        2,
    ),
    (
        "liu.yang",
        "Liu Yang",
        AgentRole::Junior,
        &["default", "phone_support"],
        &[("orders", 3), ("voice", 2)],
        3,
    ),
    (
        "wang.min",
        "Wang Min",
        AgentRole::Supervisor,
        &["gold_service", "phone_support", "default"],
        &[("billing", 3)],
        1,
    ),
];

/// The SIP password the demo gives `agent` (in `realm`): a loopback demo's
/// password, printed in the banner like the demo tokens.
pub fn sip_password(agent: &str) -> String {
    format!("{agent}-phone")
}

/// The demo agents whose phones the banner names: one per phone group.
const PHONE_AGENTS: [(&str, &str); 2] = [("zhang.wei", "phone_support"), ("li.na", "gold_service")];

/// The demo's agents (each with its SIP password for `realm`), groups and
/// customers.
pub fn data(realm: &str) -> (Vec<Agent>, Vec<SkillGroup>, Vec<Customer>) {
    let groups = vec![
        SkillGroup::new("gold_service", "Gold service"),
        SkillGroup::new("phone_support", "Phone support"),
        SkillGroup::new("default", "Default"),
    ];
    let agents = AGENTS
        .iter()
        .map(|(id, name, role, groups, skills, chats)| {
            let mut capacity = Capacity::default();
            for (channel, limit) in capacity.limits.iter_mut() {
                if !matches!(channel, Channel::Phone | Channel::Email) {
                    *limit = *chats;
                }
            }
            Agent {
                id: AgentId::new(*id),
                display_name: (*name).into(),
                role: *role,
                skills: skills
                    .iter()
                    .map(|(skill, level)| (skill.to_string(), *level))
                    .collect::<BTreeMap<_, _>>(),
                groups: groups.iter().map(GroupId::new).collect(),
                languages: vec!["zh-CN".into(), "en".into()],
                capacity,
                sip: Some(voice::sip::credentials(id, realm, &sip_password(id))),
            }
        })
        .collect();
    let mut vip = Customer::new("cust-vip-001", "Wang Fang");
    vip.tier = "vip".into();
    vip.tags = vec!["repeat-buyer".into()];
    vip.language = "zh-CN".into();
    vip.identities = identities(&[
        "web:wf-visitor-77",
        "app:wf-device-5",
        "phone:+8613800000001",
        "wechat:12345",
    ]);
    let mut caller = Customer::new("cust-002", "Zhao Lei");
    caller.identities = identities(&["phone:+8613900000002", "web:zl-visitor-3"]);
    let mut web = Customer::new("cust-003", "Emma Lee");
    web.language = "en".into();
    web.identities = identities(&["web:el-visitor-9", "app:el-device-2"]);
    (agents, groups, vec![vip, caller, web])
}

fn identities(pairs: &[&str]) -> Vec<Identity> {
    pairs
        .iter()
        .map(|pair| {
            let (channel, id) = pair.split_once(':').expect("channel:id");
            Identity {
                channel: Channel::parse(channel).expect("built-in channel"),
                external_id: id.into(),
            }
        })
        .collect()
}

/// Seeds the demo into `store` unless it already holds skill groups; the
/// agents' SIP passwords are bound to `realm`.
pub async fn seed_if_empty(store: &dyn Store, realm: &str) -> Result<bool> {
    let groups = store
        .list_groups()
        .await
        .context("failed to read skill groups")?;
    if !groups.is_empty() {
        return Ok(false);
    }
    let (agents, groups, customers) = data(realm);
    // Straight to the store, not through the StoreWriter: the seed runs
    // before the runtime starts (agents and groups are read at start), so
    // no actor can hold or write what it changes.
    Switchboard::seed(store, agents, groups, customers)
        .await
        .context("failed to seed demo data")?;
    store
        .write(&platform::ops(engine::now_millis())?)
        .await
        .context("failed to seed the demo knowledge base, templates and tickets")?;
    Ok(true)
}

/// What a person needs to try the running server, with fresh tokens.
pub fn banner(
    addr: SocketAddr,
    admin_addr: SocketAddr,
    signer: &TokenSigner,
    ttl_secs: u64,
    phone: Vec<String>,
) -> String {
    let exp = unix_now() + ttl_secs as i64;
    let token = |sub: &str, role: Role| {
        signer.mint(&Claims {
            sub: sub.into(),
            role,
            exp,
        })
    };
    let http = format!("http://{addr}");
    let ws = format!("ws://{addr}");
    let hours = ttl_secs / 3600;
    let mut lines = vec![
        format!("switchboard is running on {http}"),
        format!("  agent desktop    {http}/desktop  (sign in with an agent or supervisor token)"),
        format!("  customer chat    {http}/chat"),
        format!("  REST API         {http}/api/v1  (OpenAPI: {http}/api/openapi.json)"),
        format!("  customer socket  {ws}/ws/customer?token=<customer token>"),
        format!("  agent socket     {ws}/ws/agent?token=<agent token>"),
        format!("  health           {http}/healthz  {http}/readyz"),
        format!("  metrics (admin)  http://{admin_addr}/metrics"),
    ];
    lines.extend(phone);
    lines.extend([
        String::new(),
        format!("Demo tokens (valid {hours} h; mint more with `switchboard token`):"),
    ]);
    let people = [
        ("cust-vip-001", Role::Customer, "customer Wang Fang (VIP)"),
        ("cust-003", Role::Customer, "customer Emma Lee"),
        ("li.na", Role::Agent, "agent Li Na (gold_service, default)"),
        ("chen.jie", Role::Agent, "agent Chen Jie (default)"),
        (
            "zhang.wei",
            Role::Agent,
            "agent Zhang Wei (phone_support, default)",
        ),
        ("wang.min", Role::Supervisor, "supervisor Wang Min"),
        ("admin", Role::Admin, "admin"),
    ];
    for (sub, role, who) in people {
        lines.push(format!("  {who}:\n    {}", token(sub, role)));
    }
    lines.push(String::new());
    lines.push("Try it in a browser (each link signs in; open them in separate windows):".into());
    lines.push(format!(
        "  agent Chen Jie       {http}/desktop?token={}",
        token("chen.jie", Role::Agent)
    ));
    lines.push(format!(
        "  supervisor Wang Min  {http}/desktop?token={}",
        token("wang.min", Role::Supervisor)
    ));
    lines.push(format!(
        "  customer Emma Lee    {http}/chat?token={}",
        token("cust-003", Role::Customer)
    ));
    lines.push(format!("  a new web visitor    {http}/chat"));
    lines.push(String::new());
    lines.push("Or over a WebSocket (websocat, or any client):".into());
    lines.push(format!(
        "  websocat '{ws}/ws/agent?token=<li.na token>'   then send {{\"type\":\"hello\"}} and {{\"type\":\"presence\",\"state\":\"available\"}}"
    ));
    lines.push(format!(
        "  websocat '{ws}/ws/customer?token=<Wang Fang token>'   then send {{\"type\":\"hello\",\"channel\":\"web\"}} and {{\"type\":\"message\",\"client_message_id\":\"m1\",\"body\":\"我的订单何时发货?\"}}"
    ));
    lines.join("\n")
}

/// With the demo, the phone channel runs unless `[voice]` is enabled: the
/// endpoint on `voice.listen` (127.0.0.1:5060 by default; an OS-chosen port
/// when it is taken), MD5 digest only, calls taken from 127.0.0.0/8 as the
/// trunk `demo-loopback` when no trunk is configured.
pub fn with_phone(mut config: crate::config::Config) -> crate::config::Config {
    if !(config.demo.enabled && config.demo.phone) || config.voice.enabled {
        return config;
    }
    let voice = &mut config.voice;
    voice.enabled = true;
    // Debian's baresip 1.0 gives up on a 401 that also offers SHA-256 (it
    // reads every challenge and fails on the one it does not know): the
    // demo challenges with MD5 only, so that the softphone docs/voice.md
    // suggests can register.
    voice.digest_algorithms = vec![voice::sip::DigestAlgorithm::Md5];
    if voice.listen.port() != 0 && !port_free(voice.listen) {
        voice.listen.set_port(0);
    }
    if voice.trunks.is_empty() {
        voice.trunks = vec![voice::sip::TrunkConfig::new(
            "demo-loopback",
            &["127.0.0.0/8"],
            "",
            "",
        )];
    }
    config
}

/// Nothing listens on `addr` over UDP or TCP right now.
fn port_free(addr: SocketAddr) -> bool {
    std::net::UdpSocket::bind(addr).is_ok() && std::net::TcpListener::bind(addr).is_ok()
}

/// The banner's phone lines: where phones register, the demo phones whose
/// stored password is still the demo's (a store seeded before the demo had
/// phones, or whose passwords were changed, lists none), and how to call in.
pub async fn phone_banner(store: &dyn Store, realm: &str, sip: SocketAddr) -> Vec<String> {
    let mut lines = vec![
        format!("  SIP (phones)     sip:<agent id>@{sip}  UDP and TCP (docs/voice.md)"),
        String::new(),
        "Demo phones: register as the agent with the password below; calls from".to_owned(),
        format!("127.0.0.0/8 are the demo trunk (`sipp -sn uac {sip} -s support -m 1` calls in):"),
    ];
    for (agent, group) in PHONE_AGENTS {
        let Ok(Some(profile)) = store.get_agent(&AgentId::new(agent)).await else {
            continue;
        };
        let demo = voice::sip::credentials(agent, realm, &sip_password(agent));
        if profile.sip.as_ref() == Some(&demo) {
            lines.push(format!(
                "  {agent:<10} password {:<16} ({group})",
                sip_password(agent)
            ));
        }
    }
    lines
}
