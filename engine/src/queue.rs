//! A skill group's queue and agent selection.
//!
//! Waiting sessions are ordered by priority (higher first), then by the time
//! they first entered a queue (older first), so a session that overflows from
//! another group keeps its place in line. An offer goes to the longest-idle
//! member that is available, has free capacity on the session's channel and is
//! admitted by the routing step (skills, language, sticky agent).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use crate::Millis;
use crate::agent::{Agent, Load};
use crate::channel::Channel;
use crate::ids::{AgentId, SessionId};

/// What a waiting session tells the queue about itself.
pub trait Candidate {
    /// The session's channel, for capacity.
    fn channel(&self) -> &Channel;
    /// Whether the routing step lets `agent` take it.
    fn admits(&self, agent: &Agent) -> bool;
}

/// A member agent as the group sees it: a copy of what the Agent actor reports.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MemberStatus {
    /// Presence is `available`.
    pub available: bool,
    /// Sessions offered and held.
    pub load: Load,
    /// Longest idle is offered first.
    pub idle_since: Millis,
}

#[derive(Debug)]
struct Member {
    profile: Arc<Agent>,
    status: MemberStatus,
}

impl Member {
    /// Available with room on at least one channel: worth looking at in dispatch.
    fn takes_offers(&self) -> bool {
        self.status.available && self.profile.capacity.can_take_any(&self.status.load)
    }
}

/// A ready member during one dispatch scan.
struct ReadyMember<'a> {
    key: &'a (Millis, AgentId),
    member: &'a Member,
    /// `Capacity::can_take` per built-in channel, once known in this scan.
    can_take: [Option<bool>; Channel::BUILT_IN.len()],
}

impl ReadyMember<'_> {
    fn can_take(&mut self, channel: &Channel) -> bool {
        let check = |member: &Member| {
            member
                .profile
                .capacity
                .can_take(&member.status.load, channel)
        };
        let channel_idx = match channel {
            Channel::Web => 0,
            Channel::App => 1,
            Channel::Phone => 2,
            Channel::Wechat => 3,
            Channel::Qq => 4,
            Channel::Sms => 5,
            Channel::Email => 6,
            Channel::Custom(_) => return check(self.member),
        };
        *self.can_take[channel_idx].get_or_insert_with(|| check(self.member))
    }
}

/// One waiting session.
#[derive(Debug)]
pub struct Waiting<T> {
    /// Served first when higher.
    pub priority: i32,
    /// When the session first entered a queue.
    pub queued_at: Millis,
    /// The session's facts for [`Candidate`].
    pub entry: T,
    /// The agent holding an offer for it; it keeps its place meanwhile.
    pub offered_to: Option<AgentId>,
    /// Agents that rejected or ignored it; they are not offered it again.
    pub passed_by: Vec<AgentId>,
}

/// An offer the group must send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// The session.
    pub session: SessionId,
    /// To whom.
    pub agent: AgentId,
}

type OrderKey = (Reverse<i32>, Millis, SessionId);

/// A group's queue and its view of its members.
#[derive(Debug)]
pub struct GroupQueue<T> {
    /// Waiting sessions in queue order; dispatch walks it without a lookup per session.
    order: BTreeMap<OrderKey, Waiting<T>>,
    /// Where each waiting session sits in `order`.
    index: HashMap<SessionId, OrderKey>,
    members: HashMap<AgentId, Member>,
    /// Members that take offers, longest idle first.
    ready: BTreeSet<(Millis, AgentId)>,
}

impl<T> Default for GroupQueue<T> {
    fn default() -> Self {
        GroupQueue {
            order: BTreeMap::new(),
            index: HashMap::new(),
            members: HashMap::new(),
            ready: BTreeSet::new(),
        }
    }
}

impl<T: Candidate> GroupQueue<T> {
    /// Adds a session, or re-positions it if it is already waiting.
    pub fn enqueue(&mut self, session: SessionId, priority: i32, queued_at: Millis, entry: T) {
        self.remove(session);
        let key = (Reverse(priority), queued_at, session);
        self.index.insert(session, key);
        self.order.insert(
            key,
            Waiting {
                priority,
                queued_at,
                entry,
                offered_to: None,
                passed_by: Vec::new(),
            },
        );
    }

    /// Gives a waiting session another priority, keeping its queue time,
    /// its outstanding offer and who passed it by; returns it (for the
    /// caller's own copy of the priority), or `None` if it is not waiting.
    pub fn reprioritise(&mut self, session: SessionId, priority: i32) -> Option<&mut Waiting<T>> {
        let old_key = self.index.get(&session).copied()?;
        let mut waiting = self.order.remove(&old_key)?;
        waiting.priority = priority;
        let key = (Reverse(priority), waiting.queued_at, session);
        self.index.insert(session, key);
        Some(self.order.entry(key).or_insert(waiting))
    }

    /// Takes a session out (accepted, abandoned, overflowed); returns it if it was waiting.
    pub fn remove(&mut self, session: SessionId) -> Option<Waiting<T>> {
        let key = self.index.remove(&session)?;
        self.order.remove(&key)
    }

    /// Adds or updates a member and what it reported about itself.
    pub fn update_member(&mut self, profile: Arc<Agent>, status: MemberStatus) {
        let id = profile.id.clone();
        self.remove_member(&id);
        let member = Member { profile, status };
        if member.takes_offers() {
            self.ready.insert((member.status.idle_since, id.clone()));
        }
        self.members.insert(id, member);
    }

    /// Forgets a member (left the group).
    pub fn remove_member(&mut self, agent: &AgentId) {
        if let Some(old) = self.members.remove(agent) {
            self.ready.remove(&(old.status.idle_since, agent.clone()));
        }
    }

    /// The offer for `session` was rejected or lapsed: it waits again, in the
    /// same place, and `agent` is offered it again only when no other ready
    /// member can take it. Returns false if the session is not waiting here
    /// (it left meanwhile).
    pub fn offer_lapsed(&mut self, session: SessionId, agent: &AgentId) -> bool {
        let waiting = self
            .index
            .get(&session)
            .and_then(|key| self.order.get_mut(key));
        match waiting {
            Some(waiting) => {
                if waiting.offered_to.as_ref() == Some(agent) {
                    waiting.offered_to = None;
                }
                waiting.passed_by.push(agent.clone());
                true
            }
            None => false,
        }
    }

    /// Finds offers for as many waiting sessions as it can, in queue order.
    /// Each offer reserves capacity in the group's copy of the member's load
    /// until the Agent actor reports back.
    pub fn dispatch(&mut self, now: Millis) -> Vec<Offer> {
        let mut offers = Vec::new();
        // Sessions before this key have been looked at.
        let mut resume_after: Option<OrderKey> = None;
        while !self.ready.is_empty() {
            let Some((session_key, ready_key)) = self.next_match(resume_after.as_ref()) else {
                break;
            };
            let (idle_since, agent_id) = ready_key;
            self.ready.remove(&(idle_since, agent_id.clone()));
            let member = self
                .members
                .get_mut(&agent_id)
                .expect("ready agents are members");
            let waiting = self
                .order
                .get_mut(&session_key)
                .expect("matched sessions are waiting");
            member.status.load.add(waiting.entry.channel());
            member.status.idle_since = now;
            if member.takes_offers() {
                self.ready.insert((now, agent_id.clone()));
            }
            waiting.offered_to = Some(agent_id.clone());
            offers.push(Offer {
                session: session_key.2,
                agent: agent_id,
            });
            resume_after = Some(session_key);
        }
        offers
    }

    /// The first session after `resume_after` (in queue order) not yet offered
    /// that a ready member can take, and the first such member (longest idle).
    /// Ready members are few and their loads do not change during the scan, so
    /// they are looked up once and their capacity is checked once per channel,
    /// not once per waiting session.
    fn next_match(&self, resume_after: Option<&OrderKey>) -> Option<(OrderKey, (Millis, AgentId))> {
        let mut ready_members: Vec<ReadyMember<'_>> = self
            .ready
            .iter()
            .map(|key| ReadyMember {
                key,
                member: &self.members[&key.1],
                can_take: [None; Channel::BUILT_IN.len()],
            })
            .collect();
        let start = resume_after.map_or(Bound::Unbounded, Bound::Excluded);
        self.order
            .range((start, Bound::Unbounded))
            .filter(|(_, waiting)| waiting.offered_to.is_none())
            .find_map(|(session_key, waiting)| {
                let channel = waiting.entry.channel();
                let eligible = |ready: &mut ReadyMember<'_>, allow_passed: bool| {
                    ready.can_take(channel)
                        && (allow_passed || !waiting.passed_by.contains(&ready.key.1))
                        && waiting.entry.admits(&ready.member.profile)
                };
                // Someone who passed on it gets it again only when nobody
                // else ready can take it, so a session never waits on agents
                // who are free.
                let ready_idx = ready_members
                    .iter_mut()
                    .position(|ready| eligible(ready, false))
                    .or_else(|| {
                        ready_members
                            .iter_mut()
                            .position(|ready| eligible(ready, true))
                    })?;
                Some((*session_key, ready_members[ready_idx].key.clone()))
            })
    }

    /// 1-based place in line, counting only sessions not yet offered.
    pub fn position(&self, session: SessionId) -> Option<usize> {
        let key = self.index.get(&session)?;
        Some(
            self.order
                .range(..key)
                .filter(|(_, waiting)| waiting.offered_to.is_none())
                .count()
                + 1,
        )
    }

    /// Sessions waiting (offered or not).
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// No session is waiting.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The oldest first-queue time among waiting sessions.
    pub fn oldest_queued_at(&self) -> Option<Millis> {
        self.order.values().map(|w| w.queued_at).min()
    }

    /// Members that are available with free capacity.
    pub fn n_ready(&self) -> usize {
        self.ready.len()
    }

    /// A waiting session.
    pub fn get(&self, session: SessionId) -> Option<&Waiting<T>> {
        self.order.get(self.index.get(&session)?)
    }

    /// Waiting sessions in queue order.
    pub fn iter(&self) -> impl Iterator<Item = (SessionId, &Waiting<T>)> {
        self.order
            .iter()
            .map(|((_, _, session), waiting)| (*session, waiting))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::{Capacity, Role};

    /// A test session: its channel and the skill it needs at level ≥ 1.
    struct Needs(Channel, Option<&'static str>);

    impl Candidate for Needs {
        fn channel(&self) -> &Channel {
            &self.0
        }
        fn admits(&self, agent: &Agent) -> bool {
            self.1
                .is_none_or(|skill| agent.skills.get(skill).copied().unwrap_or(0) >= 1)
        }
    }

    fn agent(id: &str, skills: &[&str]) -> Arc<Agent> {
        Arc::new(Agent {
            id: AgentId::new(id),
            display_name: id.to_uppercase(),
            role: Role::Junior,
            skills: skills.iter().map(|s| (s.to_string(), 3)).collect(),
            groups: vec![],
            languages: vec![],
            capacity: Capacity::default(),
            sip: None,
        })
    }

    fn status(available: bool, idle_since: Millis, held: &[Channel]) -> MemberStatus {
        let mut load = Load::default();
        held.iter().for_each(|c| load.add(c));
        MemberStatus {
            available,
            load,
            idle_since,
        }
    }

    enum Step {
        /// (session, priority, queued_at, channel, needed skill)
        Enqueue(u64, i32, Millis, Channel, Option<&'static str>),
        /// (agent, skills, available, idle_since, channels held)
        Member(
            &'static str,
            &'static [&'static str],
            bool,
            Millis,
            &'static [Channel],
        ),
        Lapse(u64, &'static str),
        Remove(u64),
        /// (session, new priority)
        Reprioritise(u64, i32),
        /// Dispatch and expect these (session, agent) offers.
        Dispatch(&'static [(u64, &'static str)]),
    }

    fn check(steps: &[Step]) {
        let mut queue = GroupQueue::default();
        for (idx, step) in steps.iter().enumerate() {
            match step {
                Step::Enqueue(s, priority, at, channel, skill) => queue.enqueue(
                    SessionId(*s),
                    *priority,
                    *at,
                    Needs(channel.clone(), *skill),
                ),
                Step::Member(id, skills, available, idle, held) => {
                    queue.update_member(agent(id, skills), status(*available, *idle, held))
                }
                Step::Lapse(s, a) => assert!(queue.offer_lapsed(SessionId(*s), &AgentId::new(a))),
                Step::Remove(s) => assert!(queue.remove(SessionId(*s)).is_some()),
                Step::Reprioritise(s, p) => {
                    let waiting = queue.reprioritise(SessionId(*s), *p).expect("waiting");
                    assert_eq!(waiting.priority, *p);
                }
                Step::Dispatch(expected) => {
                    let got: Vec<(u64, String)> = queue
                        .dispatch(1_000 + idx as Millis)
                        .into_iter()
                        .map(|o| (o.session.0, o.agent.to_string()))
                        .collect();
                    let expected: Vec<(u64, String)> =
                        expected.iter().map(|(s, a)| (*s, a.to_string())).collect();
                    assert_eq!(got, expected, "dispatch at step {idx}");
                }
            }
        }
    }

    #[test]
    fn selection() {
        use Channel::*;
        use Step::*;
        // Priority first, then age; longest-idle agent first.
        check(&[
            Enqueue(1, 0, 10, Web, None),
            Enqueue(2, 5, 20, Web, None),
            Enqueue(3, 0, 5, Web, None),
            Member("ann", &[], true, 300, &[]),
            Member("bob", &[], true, 100, &[]),
            // Both were just routed at the same instant; the tie goes by agent id.
            Dispatch(&[(2, "bob"), (3, "ann"), (1, "ann")]),
        ]);
        // Unavailable agents and agents without the skill are skipped.
        check(&[
            Enqueue(1, 0, 10, Web, Some("billing")),
            Member("ann", &[], true, 100, &[]),
            Member("bob", &["billing"], false, 50, &[]),
            Dispatch(&[]),
            Member("cid", &["billing"], true, 900, &[]),
            Dispatch(&[(1, "cid")]),
        ]);
        // Capacity: a call blocks chats, chats block a call, three chats at most.
        check(&[
            Enqueue(1, 0, 10, Phone, None),
            Enqueue(2, 0, 20, Web, None),
            Member("ann", &[], true, 100, &[Web]),
            Member("bob", &[], true, 200, &[Phone]),
            Dispatch(&[(2, "ann")]),
        ]);
        check(&[
            Enqueue(1, 0, 10, Web, None),
            Member("ann", &[], true, 100, &[Web, Web, Web]),
            Dispatch(&[]),
            Member("ann", &[], true, 100, &[Web, Web]),
            Dispatch(&[(1, "ann")]),
        ]);
        // An offer lapses: the session keeps its place and goes to the next agent, not back to the silent one.
        check(&[
            Enqueue(1, 0, 10, Web, None),
            Enqueue(2, 0, 20, Web, None),
            Member("ann", &[], true, 100, &[]),
            Dispatch(&[(1, "ann"), (2, "ann")]),
            Lapse(1, "ann"),
            Member("ann", &[], false, 100, &[]),
            Member("bob", &[], true, 500, &[]),
            Dispatch(&[(1, "bob")]),
        ]);
        // A rejected session goes to the others first, and back to those who
        // passed (longest idle first) only when nobody else ready can take it.
        check(&[
            Enqueue(1, 0, 10, Web, None),
            Member("ann", &[], true, 100, &[]),
            Member("bob", &[], true, 200, &[]),
            Dispatch(&[(1, "ann")]),
            Lapse(1, "ann"),
            Member("ann", &[], true, 100, &[]),
            Dispatch(&[(1, "bob")]),
            Lapse(1, "bob"),
            Member("bob", &[], true, 300, &[]),
            Dispatch(&[(1, "ann")]),
        ]);
        // Overflow keeps the place in line: a session that entered the first
        // queue at t=5 is ahead of one that arrived here at t=10.
        check(&[
            Enqueue(1, 0, 10, Web, None),
            Enqueue(2, 0, 5, Web, None),
            Member("ann", &[], true, 100, &[Web, Web]),
            Dispatch(&[(2, "ann")]),
        ]);
        // A supervisor raises a later session's priority: it goes first, and
        // a lowered one goes after its equals; the place in line is kept.
        check(&[
            Enqueue(1, 0, 10, Web, None),
            Enqueue(2, 0, 20, Web, None),
            Enqueue(3, 0, 30, Web, None),
            Reprioritise(3, 5),
            Reprioritise(1, -1),
            Member("ann", &[], true, 100, &[]),
            Dispatch(&[(3, "ann"), (2, "ann"), (1, "ann")]),
        ]);
        // An outstanding offer survives a new priority: not offered twice.
        check(&[
            Enqueue(1, 0, 10, Web, None),
            Member("ann", &[], true, 100, &[]),
            Dispatch(&[(1, "ann")]),
            Reprioritise(1, 9),
            Member("bob", &[], true, 200, &[]),
            Dispatch(&[]),
        ]);
        // Removed sessions are not offered.
        check(&[
            Enqueue(1, 0, 10, Web, None),
            Remove(1),
            Member("ann", &[], true, 1, &[]),
            Dispatch(&[]),
        ]);
    }

    #[test]
    fn positions_count_sessions_not_yet_offered() {
        let mut queue = GroupQueue::default();
        for (session, at) in [(1, 10), (2, 20), (3, 30)] {
            queue.enqueue(SessionId(session), 0, at, Needs(Channel::Web, None));
        }
        assert_eq!(queue.position(SessionId(3)), Some(3));
        queue.update_member(
            agent("ann", &[]),
            status(true, 0, &[Channel::Web, Channel::Web]),
        );
        assert_eq!(
            queue.dispatch(100),
            vec![Offer {
                session: SessionId(1),
                agent: AgentId::new("ann")
            }]
        );
        assert_eq!(queue.position(SessionId(3)), Some(2));
        assert_eq!(queue.oldest_queued_at(), Some(10));
        assert_eq!(queue.position(SessionId(9)), None);
    }
}
