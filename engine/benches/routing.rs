//! Routing decisions per second at contact-center scale: 1,000 agents in 50
//! skill groups, 10,000 sessions waiting (about 200 per group).
//!
//! A decision is the engine work for one contact: route it, enqueue it, and
//! when an agent reports free capacity, select the session to offer.
//! See `BENCHMARKS.md` for the command and the numbers.

use std::hint::black_box;
use std::sync::Arc;

use std::collections::{BTreeMap, HashMap};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use engine::Millis;
use engine::agent::{Agent, Capacity, Load, Role};
use engine::channel::Channel;
use engine::customer::Customer;
use engine::ids::{AgentId, GroupId, SessionId};
use engine::queue::{Candidate, GroupQueue, MemberStatus};
use engine::routing::{Contact, RoutePlan, RuleSet, Step};

const N_AGENTS: usize = 1_000;
const N_GROUPS: usize = 50;
const N_WAITING: usize = 10_000;
const N_CONTACTS: usize = 4_096;
/// Monday 2026-03-02 00:00 UTC; contacts arrive over the following week.
const MONDAY: Millis = 1_772_409_600_000;
const WEEK_MS: u64 = 7 * 24 * 3_600_000;

const SKILLS: [&str; 9] = [
    "billing",
    "tech",
    "voice",
    "sales",
    "refunds",
    "vip_care",
    "complaints",
    "shipping",
    "account",
];

/// Groups the rules send contacts to; the other groups of the 50 are pools
/// that receive transfers (`Step::to_group`).
const RULE_GROUPS: [&str; 15] = [
    "gold_service",
    "default",
    "complaints",
    "retention",
    "sales",
    "phone_english",
    "phone_support",
    "phone_overflow",
    "refunds",
    "billing",
    "billing_overflow",
    "tech_support",
    "tech_overflow",
    "international",
    "after_hours",
];

/// About ten rules of the kinds a contact center writes: VIP with a sticky
/// step, complaints, churn risk, phone by language, keyword rules on Chinese
/// messages inside business hours, foreign languages, after hours, default.
const RULES: &str = r#"
timezone = "+08:00"

[hours.support]
days = ["mon", "tue", "wed", "thu", "fri"]
open = "09:00"
close = "18:00"
closed_dates = ["2026-10-01"]

[hours.weekend]
days = ["sat", "sun"]
open = "10:00"
close = "16:00"

[[rule]]
name = "vip"
filter = 'customer.tier == "vip"'
  [[rule.step]]
  sticky = true
  group = "gold_service"
  timeout = "20s"
  [[rule.step]]
  group = "gold_service"
  priority = 10
  timeout = "60s"
  agent = 'agent.skills.vip_care >= 2 AND agent.languages HAS customer.language'
  [[rule.step]]
  group = "default"
  priority = 10

[[rule]]
name = "complaints"
filter = 'customer.tags HAS "complaint" OR message CONTAINS "投诉"'
  [[rule.step]]
  group = "complaints"
  priority = 5
  timeout = "60s"
  agent = '(agent.role == "expert" OR agent.skills.complaints >= 4) AND agent.languages HAS customer.language'
  [[rule.step]]
  group = "default"
  priority = 5

[[rule]]
name = "churn_risk"
filter = 'customer.tags HAS "churn-risk" AND customer.tier IN ["gold", "silver"]'
  [[rule.step]]
  group = "retention"
  timeout = "2m"
  agent = 'agent.skills.sales >= 3'
  [[rule.step]]
  group = "sales"

[[rule]]
name = "phone_english"
filter = 'channel == "phone" AND customer.language == "en"'
  [[rule.step]]
  group = "phone_english"
  timeout = "30s"
  agent = 'agent.skills.voice >= 2 AND agent.languages HAS "en"'
  [[rule.step]]
  group = "phone_support"

[[rule]]
name = "phone"
filter = 'channel == "phone"'
  [[rule.step]]
  group = "phone_support"
  timeout = "60s"
  agent = 'agent.skills.voice >= 2 AND agent.languages HAS customer.language'
  [[rule.step]]
  group = "phone_overflow"

[[rule]]
name = "refunds_in_hours"
filter = '(message CONTAINS "退款" OR message CONTAINS "退货") AND (hours.support OR hours.weekend)'
  [[rule.step]]
  group = "refunds"
  timeout = "2m"
  agent = 'agent.skills.refunds >= 3'
  [[rule.step]]
  group = "billing"
  timeout = "60s"
  [[rule.step]]
  group = "default"

[[rule]]
name = "billing"
filter = 'message CONTAINS "账单" OR message CONTAINS "发票" OR message CONTAINS "扣费"'
  [[rule.step]]
  group = "billing"
  timeout = "90s"
  agent = 'agent.skills.billing >= 3 AND agent.languages HAS customer.language'
  [[rule.step]]
  group = "billing_overflow"
  agent = 'agent.skills.billing >= 1'

[[rule]]
name = "tech"
filter = 'message CONTAINS "网络" OR message CONTAINS "无法登录" OR message CONTAINS "闪退"'
  [[rule.step]]
  group = "tech_support"
  timeout = "2m"
  agent = 'agent.skills.tech >= 3 AND agent.languages HAS customer.language'
  [[rule.step]]
  group = "tech_overflow"

[[rule]]
name = "foreign_language"
filter = 'customer.language IN ["en", "ja", "ko"]'
  [[rule.step]]
  group = "international"
  agent = 'agent.languages HAS customer.language'

[[rule]]
name = "after_hours"
filter = 'NOT hours.support AND NOT hours.weekend'
  [[rule.step]]
  group = "after_hours"

[[rule]]
name = "everyone_else"
filter = "true"
  [[rule.step]]
  group = "default"
  agent = 'agent.languages HAS customer.language'
"#;

const MESSAGES: [&str; 12] = [
    "我的订单何时发货?",
    "我要退款，订单号 12345",
    "这个月的账单多扣费了",
    "请帮我开发票",
    "网络一直连不上",
    "App 闪退，无法登录",
    "我要投诉你们的快递员",
    "商品有质量问题，想退货",
    "你好，在吗？",
    "请问会员有什么优惠",
    "How do I change my delivery address?",
    "修改收货地址",
];

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// A waiting session as the queue holds it, as the SkillGroup actor's
/// `QueueEntry` does: the contact and the routing step it waits under.
struct Queued {
    contact: Arc<Contact>,
    step: Step,
}

impl Candidate for Queued {
    fn channel(&self) -> &Channel {
        &self.contact.channel
    }

    fn admits(&self, agent: &Agent) -> bool {
        self.step.admits(agent, &self.contact)
    }
}

fn group_name(group_idx: usize) -> String {
    match RULE_GROUPS.get(group_idx) {
        Some(name) => (*name).to_owned(),
        None => format!("pool_{group_idx:02}"),
    }
}

/// An agent's load when every channel it serves is full: nothing more fits.
fn full_load(agent: &Agent) -> Load {
    let mut load = Load::default();
    for (channel, &limit) in &agent.capacity.limits {
        if agent.capacity.exclusive.contains(channel) {
            continue;
        }
        for _ in 0..limit {
            load.add(channel);
        }
    }
    if load.total() == 0 {
        // Only exclusive channels (a phone-only agent): on one call.
        let channel = agent.capacity.limits.keys().next().expect("some channel");
        load.add(channel);
    }
    load
}

/// A full load with one session fewer: on `channel` if the agent holds one there.
fn one_slot_free(agent: &Agent, channel: &Channel) -> Load {
    let mut load = full_load(agent);
    let freed = if load.on(channel) > 0 {
        channel.clone()
    } else {
        load.channels()
            .next()
            .expect("a full load holds a session")
            .clone()
    };
    load.remove(&freed);
    load
}

fn make_agent(rng: &mut Rng, agent_idx: usize) -> Agent {
    let mut skills = BTreeMap::new();
    for skill in SKILLS {
        if rng.chance(50) {
            skills.insert(skill.to_owned(), 1 + rng.below(5) as u8);
        }
    }
    let mut languages = Vec::new();
    if rng.chance(95) {
        languages.push("zh-CN".to_owned());
    }
    for (language, percent) in [("en", 35), ("yue", 10), ("ja", 8), ("ko", 5)] {
        if rng.chance(percent) {
            languages.push(language.to_owned());
        }
    }
    let n_groups = 1 + rng.below(3);
    let mut groups: Vec<GroupId> = Vec::new();
    while groups.len() < n_groups {
        let group = GroupId::new(group_name(rng.below(N_GROUPS)));
        if !groups.contains(&group) {
            groups.push(group);
        }
    }
    let capacity = match rng.below(3) {
        // Phone only.
        0 => Capacity {
            limits: [(Channel::Phone, 1)].into(),
            exclusive: [Channel::Phone].into(),
        },
        // Chat only, two or three at once.
        1 => {
            let n_chats = 2 + rng.below(2) as u16;
            Capacity {
                limits: [
                    (Channel::Web, n_chats),
                    (Channel::App, n_chats),
                    (Channel::Wechat, n_chats),
                ]
                .into(),
                exclusive: Default::default(),
            }
        }
        // Blended: every channel, a call blocks chats.
        _ => Capacity::default(),
    };
    Agent {
        id: AgentId::new(format!("agent{agent_idx:04}")),
        display_name: format!("Agent {agent_idx}"),
        role: if rng.chance(20) {
            Role::Expert
        } else {
            Role::Junior
        },
        skills,
        groups,
        languages,
        capacity,
        sip: None,
    }
}

fn make_contact(rng: &mut Rng, contact_idx: usize) -> Contact {
    let channel = rng
        .pick(&[
            Channel::Web,
            Channel::Web,
            Channel::App,
            Channel::Wechat,
            Channel::Wechat,
            Channel::Phone,
            Channel::Email,
        ])
        .clone();
    let mut customer = Customer::new(format!("c{contact_idx}"), format!("客户{contact_idx}"));
    customer.tier = match rng.below(100) {
        0..5 => "vip",
        5..25 => "gold",
        25..50 => "silver",
        _ => "standard",
    }
    .to_owned();
    if rng.chance(8) {
        customer.tags.push("complaint".to_owned());
    }
    if rng.chance(10) {
        customer.tags.push("churn-risk".to_owned());
    }
    customer.language = match rng.below(100) {
        0..75 => "zh-CN",
        75..87 => "en",
        87..92 => "yue",
        92..96 => "ja",
        _ => "ko",
    }
    .to_owned();
    if rng.chance(30) {
        customer.last_agent = Some(AgentId::new(format!("agent{:04}", rng.below(N_AGENTS))));
    }
    Contact {
        channel,
        customer,
        message: rng.pick(&MESSAGES).to_string(),
        digits: String::new(),
        at: MONDAY + (rng.next() % WEEK_MS) as Millis,
    }
}

/// Routes a contact the way the Session actor does: the first rule's plan, or
/// the fallback, entered at the first step that applies.
fn route(rules: &RuleSet, contact: &Contact) -> Step {
    let plan = rules.route(contact).unwrap_or_else(RoutePlan::fallback);
    let step_idx = (0..plan.steps.len())
        .find(|&step_idx| {
            step_idx + 1 == plan.steps.len() || plan.steps[step_idx].applies_to(contact)
        })
        .expect("a plan has steps");
    plan.steps[step_idx].clone()
}

/// The whole contact center: agents, groups with their members, waiting sessions.
struct Center {
    rules: RuleSet,
    agents: Vec<Arc<Agent>>,
    /// Each agent's status when all its channels are full.
    busy: Vec<MemberStatus>,
    /// Each agent's status with one slot free, per channel it holds sessions on.
    one_free: Vec<Vec<(Channel, MemberStatus)>>,
    group_idx: HashMap<GroupId, usize>,
    /// Agent indices per group.
    members: Vec<Vec<usize>>,
    queues: Vec<GroupQueue<Queued>>,
    /// The contacts routed in the measured loop, in rotation.
    contacts: Vec<Arc<Contact>>,
    next_session: u64,
    now: Millis,
}

impl Center {
    fn new(seed: u64) -> Center {
        let mut rng = Rng(seed);
        let rules = RuleSet::parse(RULES, "bench.toml").expect("the bench rules are valid");
        let group_idx: HashMap<GroupId, usize> = (0..N_GROUPS)
            .map(|group_idx| (GroupId::new(group_name(group_idx)), group_idx))
            .collect();
        let registry = engine::channel::ChannelRegistry::default();
        rules
            .validate(&|group| group_idx.contains_key(group), &registry)
            .expect("every rule group exists");
        let agents: Vec<Arc<Agent>> = (0..N_AGENTS)
            .map(|agent_idx| Arc::new(make_agent(&mut rng, agent_idx)))
            .collect();
        let busy: Vec<MemberStatus> = agents
            .iter()
            .map(|agent| MemberStatus {
                available: true,
                load: full_load(agent),
                idle_since: 0,
            })
            .collect();
        let one_free: Vec<Vec<(Channel, MemberStatus)>> = agents
            .iter()
            .map(|agent| {
                let held: Vec<Channel> = full_load(agent).channels().cloned().collect();
                held.into_iter()
                    .map(|channel| {
                        let status = MemberStatus {
                            available: true,
                            load: one_slot_free(agent, &channel),
                            idle_since: 0,
                        };
                        (channel, status)
                    })
                    .collect()
            })
            .collect();
        let mut members = vec![Vec::new(); N_GROUPS];
        for (agent_idx, agent) in agents.iter().enumerate() {
            for group in &agent.groups {
                members[group_idx[group]].push(agent_idx);
            }
        }
        let mut queues: Vec<GroupQueue<Queued>> =
            (0..N_GROUPS).map(|_| GroupQueue::default()).collect();
        for (queue, group_members) in queues.iter_mut().zip(&members) {
            for &agent_idx in group_members {
                // Everyone is busy or away: the queues are long because no one is free.
                let status = MemberStatus {
                    available: rng.chance(80),
                    ..busy[agent_idx].clone()
                };
                queue.update_member(agents[agent_idx].clone(), status);
            }
        }
        let contacts: Vec<Arc<Contact>> = (0..N_CONTACTS)
            .map(|contact_idx| Arc::new(make_contact(&mut rng, contact_idx)))
            .collect();
        let mut center = Center {
            rules,
            agents,
            busy,
            one_free,
            group_idx,
            members,
            queues,
            contacts,
            next_session: 1,
            now: MONDAY + WEEK_MS as Millis,
        };
        center.fill_queues(&mut rng);
        center
    }

    /// N_WAITING / N_GROUPS sessions in every group: routed contacts, at any
    /// step of their plan (some have overflowed), and transfers for the pools
    /// no rule targets.
    fn fill_queues(&mut self, rng: &mut Rng) {
        let per_group = N_WAITING / N_GROUPS;
        let mut contact_idx = N_CONTACTS;
        for _ in 0..200 * N_WAITING {
            if self.n_waiting() >= N_WAITING {
                return;
            }
            contact_idx += 1;
            let contact = Arc::new(make_contact(rng, contact_idx));
            let plan = self
                .rules
                .route(&contact)
                .unwrap_or_else(RoutePlan::fallback);
            let step = plan.steps[rng.below(plan.steps.len())].clone();
            if self.queues[self.group_idx[&step.group]].len() < per_group {
                self.enqueue(step, contact);
            }
            let pool_idx = RULE_GROUPS.len() + rng.below(N_GROUPS - RULE_GROUPS.len());
            if self.queues[pool_idx].len() < per_group {
                let transfer = Step::to_group(GroupId::new(group_name(pool_idx)), 0);
                self.enqueue(transfer, Arc::new(make_contact(rng, contact_idx)));
            }
        }
        panic!("could not fill every group; make the rules reach every group");
    }

    fn enqueue(&mut self, step: Step, contact: Arc<Contact>) -> (usize, SessionId) {
        let session = SessionId(self.next_session);
        self.next_session += 1;
        self.now += 1;
        let group_idx = self.group_idx[&step.group];
        let priority = step.priority;
        self.queues[group_idx].enqueue(session, priority, self.now, Queued { contact, step });
        (group_idx, session)
    }

    fn n_waiting(&self) -> usize {
        self.queues.iter().map(GroupQueue::len).sum()
    }

    /// One routing decision for the contact `contact_idx` (rotating): route,
    /// enqueue, one member of the group reports a free slot, dispatch. Then
    /// the queue is put back as it was so that the next decision sees the
    /// same load. Returns the number of offers made.
    fn decide(&mut self, contact_idx: usize) -> usize {
        let contact = self.contacts[contact_idx % N_CONTACTS].clone();
        let step = route(&self.rules, &contact);
        let channel = contact.channel.clone();
        let (group_idx, session) = self.enqueue(step, contact);
        let now = self.now;

        let group_members = &self.members[group_idx];
        let agent_idx = group_members[contact_idx % group_members.len()];
        let agent = &self.agents[agent_idx];
        let queue = &mut self.queues[group_idx];
        // A session on the contact's channel ended if the agent holds one there.
        let one_free = &self.one_free[agent_idx];
        let (_, free) = one_free
            .iter()
            .find(|(held, _)| *held == channel)
            .unwrap_or(&one_free[0]);
        let free = MemberStatus {
            idle_since: now,
            ..free.clone()
        };
        queue.update_member(agent.clone(), free);
        let offers = queue.dispatch(now);

        // The offers are accepted and those sessions leave the queue. To keep
        // the load steady they are put back in their places and the new
        // session leaves instead; the agent is busy again.
        let mut new_session_offered = false;
        for offer in &offers {
            let waiting = queue.remove(offer.session).expect("offered sessions wait");
            if offer.session == session {
                new_session_offered = true;
            } else {
                queue.enqueue(
                    offer.session,
                    waiting.priority,
                    waiting.queued_at,
                    waiting.entry,
                );
            }
        }
        if !new_session_offered {
            queue.remove(session);
        }
        queue.update_member(agent.clone(), self.busy[agent_idx].clone());
        offers.len()
    }
}

fn route_contact(c: &mut Criterion) {
    let center = Center::new(SEED);
    let mut group = c.benchmark_group("route_contact");
    group.throughput(Throughput::Elements(1));
    let mut contact_idx = 0;
    group.bench_function("rules_route_and_step", |b| {
        b.iter(|| {
            contact_idx = (contact_idx + 1) % N_CONTACTS;
            route(&center.rules, black_box(&center.contacts[contact_idx]))
        })
    });
    group.finish();
}

fn decision(c: &mut Criterion) {
    let mut center = Center::new(SEED);
    assert_eq!(center.n_waiting(), N_WAITING);
    let mut n_offers = 0;
    let mut rules_hit: BTreeMap<String, usize> = BTreeMap::new();
    for contact_idx in 0..N_CONTACTS {
        let step = route(&center.rules, &center.contacts[contact_idx]);
        *rules_hit.entry(step.group.to_string()).or_default() += 1;
        n_offers += center.decide(contact_idx);
    }
    assert_eq!(center.n_waiting(), N_WAITING, "the load stays steady");
    eprintln!(
        "decision: {n_offers} offers in {N_CONTACTS} decisions ({:.0} %); first groups: {rules_hit:?}",
        100.0 * n_offers as f64 / N_CONTACTS as f64
    );

    let mut group = c.benchmark_group("decision");
    group.throughput(Throughput::Elements(1));
    let mut contact_idx = 0;
    group.bench_function("route_enqueue_dispatch", |b| {
        b.iter(|| {
            contact_idx += 1;
            black_box(center.decide(contact_idx))
        })
    });
    group.finish();
}

fn dispatch_no_free_agent(c: &mut Criterion) {
    let mut center = Center::new(SEED);
    // Every waiting session in one queue, whose members are all busy or away.
    let mut queue: GroupQueue<Queued> = GroupQueue::default();
    let mut waiting: Vec<(SessionId, i32, Millis, Queued)> = Vec::new();
    for group_queue in &mut center.queues {
        let sessions: Vec<SessionId> = group_queue.iter().map(|(session, _)| session).collect();
        for session in sessions {
            let entry = group_queue.remove(session).expect("listed sessions wait");
            waiting.push((session, entry.priority, entry.queued_at, entry.entry));
        }
    }
    for (session, priority, queued_at, entry) in waiting {
        queue.enqueue(session, priority, queued_at, entry);
    }
    for &agent_idx in &center.members[center.group_idx[&GroupId::new("default")]] {
        queue.update_member(
            center.agents[agent_idx].clone(),
            center.busy[agent_idx].clone(),
        );
    }
    assert_eq!(queue.len(), N_WAITING);
    assert_eq!(queue.n_ready(), 0);

    let mut group = c.benchmark_group("dispatch_no_free_agent");
    group.throughput(Throughput::Elements(1));
    group.bench_function("10k_waiting", |b| {
        b.iter(|| {
            let offers = queue.dispatch(black_box(center.now));
            assert!(offers.is_empty());
            offers
        })
    });
    group.finish();
}

const SEED: u64 = 0x5eed_cafe_f00d_d00d;

criterion_group!(route_benches, route_contact);
criterion_group!(decision_benches, decision);
criterion_group!(dispatch_benches, dispatch_no_free_agent);
criterion_main!(route_benches, decision_benches, dispatch_benches);
