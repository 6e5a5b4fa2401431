//! Routing decisions per second at contact-center scale: 1,000 agents in 50
//! skill groups, 10,000 sessions waiting (about 200 per group).
//!
//! A decision is the engine work for one contact: route it, enqueue it, and
//! when an agent reports free capacity, select the session to offer.
//! See `BENCHMARKS.md` for the command and the numbers.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use engine::Millis;
use engine::agent::{Agent, Capacity, Load, Role};
use engine::channel::Channel;
use engine::ids::{AgentId, GroupId, SessionId};
use engine::queue::{Candidate, GroupQueue, MemberStatus};

const N_AGENTS: usize = 1_000;
const N_GROUPS: usize = 50;
const N_WAITING: usize = 10_000;
const N_CONTACTS: usize = 4_096;

const SKILLS: [&str; 8] = [
    "billing", "tech", "sales", "refunds", "vip_care", "shipping", "account", "network",
];
const LANGUAGES: [&str; 4] = ["zh-CN", "en", "ja", "yue"];

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

/// A waiting session as a group queue sees it.
struct Queued {
    channel: Channel,
    skill: &'static str,
    min_level: u8,
    language: &'static str,
}

impl Candidate for Queued {
    fn channel(&self) -> &Channel {
        &self.channel
    }

    fn admits(&self, agent: &Agent) -> bool {
        agent.skills.get(self.skill).copied().unwrap_or(0) >= self.min_level
            && agent.languages.iter().any(|l| l == self.language)
    }
}

/// A contact as the router gets it, with the group it routes to.
struct Contact {
    group_idx: usize,
    priority: i32,
    channel: Channel,
    skill: &'static str,
    language: &'static str,
}

fn group_id(group_idx: usize) -> GroupId {
    GroupId::new(format!("g{group_idx:02}"))
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

/// `load` with one session fewer on `channel` if the agent serves it, else on its first channel.
fn one_slot_free(agent: &Agent, channel: &Channel) -> Load {
    let mut load = full_load(agent);
    let freed = if load.on(channel) > 0 {
        channel.clone()
    } else {
        load.channels()
            .next()
            .expect("full load holds a session")
            .clone()
    };
    load.remove(&freed);
    load
}

fn make_agent(rng: &mut Rng, agent_idx: usize) -> Agent {
    let mut skills = std::collections::BTreeMap::new();
    for skill in SKILLS {
        if rng.chance(40) {
            skills.insert(skill.to_owned(), 1 + rng.below(5) as u8);
        }
    }
    let mut languages = vec!["zh-CN".to_owned()];
    if rng.chance(30) {
        languages.push("en".to_owned());
    }
    if rng.chance(8) {
        languages.push("ja".to_owned());
    }
    if rng.chance(10) {
        languages.push("yue".to_owned());
    }
    let n_groups = 1 + rng.below(3);
    let mut groups: Vec<GroupId> = Vec::new();
    while groups.len() < n_groups {
        let group = group_id(rng.below(N_GROUPS));
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
            let chats = 2 + rng.below(2) as u16;
            Capacity {
                limits: [
                    (Channel::Web, chats),
                    (Channel::App, chats),
                    (Channel::Wechat, chats),
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
    }
}

fn make_contact(rng: &mut Rng) -> Contact {
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
    let language = match rng.below(100) {
        0..70 => LANGUAGES[0],
        70..90 => LANGUAGES[1],
        90..95 => LANGUAGES[2],
        _ => LANGUAGES[3],
    };
    Contact {
        group_idx: rng.below(N_GROUPS),
        priority: if rng.chance(5) { 10 } else { 0 },
        channel,
        skill: SKILLS[rng.below(SKILLS.len())],
        language,
    }
}

/// The whole contact center: agents, groups with their members, waiting sessions.
struct Center {
    agents: Vec<Arc<Agent>>,
    /// Agent indices per group.
    members: Vec<Vec<usize>>,
    queues: Vec<GroupQueue<Queued>>,
    contacts: Vec<Contact>,
    next_session: u64,
    now: Millis,
}

impl Center {
    fn new(seed: u64) -> Center {
        let mut rng = Rng(seed);
        let agents: Vec<Arc<Agent>> = (0..N_AGENTS)
            .map(|agent_idx| Arc::new(make_agent(&mut rng, agent_idx)))
            .collect();
        let mut members = vec![Vec::new(); N_GROUPS];
        for (agent_idx, agent) in agents.iter().enumerate() {
            for group in &agent.groups {
                let group_idx: usize = group.as_str()[1..].parse().expect("gNN");
                members[group_idx].push(agent_idx);
            }
        }
        let mut queues: Vec<GroupQueue<Queued>> =
            (0..N_GROUPS).map(|_| GroupQueue::default()).collect();
        for (group_idx, queue) in queues.iter_mut().enumerate() {
            for &agent_idx in &members[group_idx] {
                let agent = &agents[agent_idx];
                // Everyone is busy or away: the queue is long because no one is free.
                let status = MemberStatus {
                    available: rng.chance(80),
                    load: full_load(agent),
                    idle_since: 0,
                };
                queue.update_member(agent.clone(), status);
            }
        }
        let contacts: Vec<Contact> = (0..N_CONTACTS).map(|_| make_contact(&mut rng)).collect();
        let mut center = Center {
            agents,
            members,
            queues,
            contacts,
            next_session: 1,
            now: 1_700_000_000_000,
        };
        for waiting_idx in 0..N_WAITING {
            let contact = make_contact(&mut rng);
            // Exactly N_WAITING / N_GROUPS per group.
            let group_idx = waiting_idx % N_GROUPS;
            center.enqueue(group_idx, &contact);
        }
        center
    }

    fn enqueue(&mut self, group_idx: usize, contact: &Contact) -> SessionId {
        let session = SessionId(self.next_session);
        self.next_session += 1;
        self.now += 1;
        self.queues[group_idx].enqueue(
            session,
            contact.priority,
            self.now,
            Queued {
                channel: contact.channel.clone(),
                skill: contact.skill,
                min_level: 3,
                language: contact.language,
            },
        );
        session
    }

    fn n_waiting(&self) -> usize {
        self.queues.iter().map(GroupQueue::len).sum()
    }

    /// One routing decision for contact `contact_idx`, then put the queue back
    /// as it was so that the next decision sees the same load. Returns the
    /// number of offers made.
    fn decide(&mut self, contact_idx: usize) -> usize {
        let contact = &self.contacts[contact_idx % N_CONTACTS];
        let group_idx = contact.group_idx;
        let priority = contact.priority;
        let channel = contact.channel.clone();
        let entry = Queued {
            channel: contact.channel.clone(),
            skill: contact.skill,
            min_level: 3,
            language: contact.language,
        };
        let session = SessionId(self.next_session);
        self.next_session += 1;
        self.now += 1;
        let now = self.now;
        let queue = &mut self.queues[group_idx];
        queue.enqueue(session, priority, now, entry);

        // One member finished a session: it reports one free slot.
        let members = &self.members[group_idx];
        let agent = &self.agents[members[contact_idx % members.len()]];
        let free = MemberStatus {
            available: true,
            load: one_slot_free(agent, &channel),
            idle_since: now,
        };
        queue.update_member(agent.clone(), free);
        let offers = queue.dispatch(now);

        // The offers are accepted: those sessions leave the queue. To keep the
        // load steady they are put back in their places and the new contact
        // leaves instead; the agent is busy again.
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
        let busy = MemberStatus {
            available: true,
            load: full_load(agent),
            idle_since: now,
        };
        queue.update_member(agent.clone(), busy);
        offers.len()
    }
}

fn decision(c: &mut Criterion) {
    let mut center = Center::new(0x5eed_cafe_f00d_d00d);
    assert_eq!(center.n_waiting(), N_WAITING);
    let n_offers: usize = (0..N_CONTACTS).map(|idx| center.decide(idx)).sum();
    assert_eq!(center.n_waiting(), N_WAITING, "the load stays steady");
    eprintln!(
        "decision: {n_offers} offers in {N_CONTACTS} decisions ({:.0} %)",
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
    let mut rng = Rng(0xdead_beef);
    let agents: Vec<Arc<Agent>> = (0..40)
        .map(|agent_idx| Arc::new(make_agent(&mut rng, agent_idx)))
        .collect();
    let mut queue = GroupQueue::default();
    for agent in &agents {
        let status = MemberStatus {
            available: rng.chance(80),
            load: full_load(agent),
            idle_since: 0,
        };
        queue.update_member(agent.clone(), status);
    }
    for session_idx in 0..N_WAITING {
        let contact = make_contact(&mut rng);
        queue.enqueue(
            SessionId(session_idx as u64),
            contact.priority,
            session_idx as Millis,
            Queued {
                channel: contact.channel,
                skill: contact.skill,
                min_level: 3,
                language: contact.language,
            },
        );
    }
    assert_eq!(queue.n_ready(), 0);

    let mut group = c.benchmark_group("dispatch_no_free_agent");
    group.throughput(Throughput::Elements(1));
    group.bench_function("10k_waiting", |b| {
        b.iter(|| {
            let offers = queue.dispatch(black_box(2_000_000));
            assert!(offers.is_empty());
            offers
        })
    });
    group.finish();
}

criterion_group!(benches, decision, dispatch_no_free_agent);
criterion_main!(benches);
