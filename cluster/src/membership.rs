//! The live member set as one node sees it: who is in, who joined, who left
//! and why, and whether this node must refuse to run because another live
//! node already has its id. Pure: the node actor feeds it what it hears and
//! the time, and carries out the changes it returns.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::Role;

/// Milliseconds on the node's monotonic clock (since the node started).
pub type Millis = u64;

/// What a node says about itself in every heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// The configured node id.
    pub node_id: u8,
    /// Random, drawn at start: tells a restarted node from its previous run,
    /// and two processes configured with the same id from each other.
    pub incarnation: u64,
    /// When the process started (Unix ms): of two processes with one id, the
    /// one that started later refuses to run.
    pub started_at_ms: i64,
    /// Where it takes node-to-node connections.
    pub cluster_addr: String,
    /// Its public HTTP and WebSocket address (empty until it listens).
    pub api_addr: String,
    /// Its runtime runs and takes messages from other nodes: only ready
    /// members are placed actors on.
    #[serde(default)]
    pub ready: bool,
    /// What it does (`cluster.roles`).
    #[serde(default = "every_role")]
    pub roles: Vec<Role>,
}

fn every_role() -> Vec<Role> {
    Role::ALL.to_vec()
}

impl MemberInfo {
    /// The ractor_cluster node name: `switchboard-<id>-<incarnation>`, unique
    /// per process, so that two processes with one configured id still get
    /// connected and the conflict is seen.
    pub fn node_name(&self) -> String {
        format!("switchboard-{}-{:016x}", self.node_id, self.incarnation)
    }

    /// The (node id, incarnation) a [`MemberInfo::node_name`] names;
    /// ractor_cluster reports it as `<name>@<host>`.
    pub fn parse_node_name(name: &str) -> Option<(u8, u64)> {
        let name = name.split_once('@').map_or(name, |(name, _host)| name);
        let rest = name.strip_prefix("switchboard-")?;
        let (node_id, incarnation) = rest.split_once('-')?;
        Some((
            node_id.parse().ok()?,
            u64::from_str_radix(incarnation, 16).ok()?,
        ))
    }

    /// Which of two processes with one id keeps it (the lower): the one
    /// whose runtime runs already, whatever the clocks say; else the one
    /// that started first by its clock, then the lower incarnation, so
    /// that both sides agree.
    fn seniority(&self) -> (bool, i64, u64) {
        (!self.ready, self.started_at_ms, self.incarnation)
    }
}

/// Why a member left the set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LeftWhy {
    /// Its connection closed: it stopped, was killed, or left.
    Disconnected,
    /// Nothing heard for the failure timeout: hung, or cut off.
    Silent,
}

/// A change to the member set, for the caller to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A member joined.
    Joined(MemberInfo),
    /// A member left.
    Left {
        /// Who.
        member: MemberInfo,
        /// Why.
        why: LeftWhy,
    },
    /// A live node that started earlier has this node's id: this node must
    /// not run.
    Refused {
        /// The node that keeps the id.
        by: MemberInfo,
    },
}

/// A member other than this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// What it last said.
    pub info: MemberInfo,
    /// When it was last heard from.
    pub last_heard: Millis,
}

/// The live member set.
#[derive(Debug, Clone)]
pub struct Membership {
    me: MemberInfo,
    peers: BTreeMap<u8, Peer>,
    failure_timeout: Millis,
    /// Processes whose connection closed, by node id: (incarnation, when).
    /// A heartbeat of theirs still in flight for a failure timeout after is
    /// no rejoin (it would re-admit a killed node for a moment).
    gone: BTreeMap<u8, (u64, Millis)>,
}

impl Membership {
    /// A set of one: this node.
    pub fn new(me: MemberInfo, failure_timeout: Millis) -> Membership {
        Membership {
            me,
            peers: BTreeMap::new(),
            failure_timeout,
            gone: BTreeMap::new(),
        }
    }

    /// This node.
    pub fn me(&self) -> &MemberInfo {
        &self.me
    }

    /// This node now listens for the public at `api_addr`.
    pub fn set_api_addr(&mut self, api_addr: String) {
        self.me.api_addr = api_addr;
    }

    /// This node's runtime now runs (`true`), or is leaving (`false`).
    pub fn set_ready(&mut self, ready: bool) {
        self.me.ready = ready;
    }

    /// The other live members, by node id.
    pub fn peers(&self) -> impl Iterator<Item = &Peer> {
        self.peers.values()
    }

    /// The ids of every live member, this node's included, ascending.
    pub fn node_ids(&self) -> Vec<u8> {
        let mut ids: Vec<u8> = self.peers.keys().copied().collect();
        ids.push(self.me.node_id);
        ids.sort_unstable();
        ids
    }

    /// A heartbeat from `info` arrived at `now`.
    ///
    /// A second process with a live member's id is not admitted while that
    /// member is heard from: the later of the two refuses to run (this node,
    /// if the id is its own), and when the earlier one goes the other is
    /// admitted on its next heartbeat (a restart whose predecessor was
    /// killed is admitted as soon as the predecessor's connection closed).
    pub fn heard(&mut self, info: MemberInfo, now: Millis) -> Vec<Change> {
        if info.node_id == self.me.node_id {
            if info.incarnation != self.me.incarnation && info.seniority() < self.me.seniority() {
                return vec![Change::Refused { by: info }];
            }
            return Vec::new();
        }
        match self.peers.get_mut(&info.node_id) {
            Some(peer) if peer.info.incarnation == info.incarnation => {
                peer.last_heard = now;
                peer.info = info;
                Vec::new()
            }
            // Another process with a live member's id: see above.
            Some(_) => Vec::new(),
            None if self
                .gone
                .get(&info.node_id)
                .is_some_and(|(incarnation, at)| {
                    *incarnation == info.incarnation
                        && now.saturating_sub(*at) <= self.failure_timeout
                }) =>
            {
                Vec::new()
            }
            None => {
                self.gone.remove(&info.node_id);
                self.peers.insert(
                    info.node_id,
                    Peer {
                        info: info.clone(),
                        last_heard: now,
                    },
                );
                vec![Change::Joined(info)]
            }
        }
    }

    /// The connection to the process `(node_id, incarnation)` closed at `now`.
    pub fn disconnected(&mut self, node_id: u8, incarnation: u64, now: Millis) -> Vec<Change> {
        match self.peers.get(&node_id) {
            Some(peer) if peer.info.incarnation == incarnation => {
                let peer = self.peers.remove(&node_id).expect("just found");
                self.gone.insert(node_id, (incarnation, now));
                vec![Change::Left {
                    member: peer.info,
                    why: LeftWhy::Disconnected,
                }]
            }
            _ => Vec::new(),
        }
    }

    /// Removes the members not heard from for the failure timeout.
    pub fn expire(&mut self, now: Millis) -> Vec<Change> {
        let timeout = self.failure_timeout;
        let silent: Vec<u8> = self
            .peers
            .values()
            .filter(|peer| now.saturating_sub(peer.last_heard) > timeout)
            .map(|peer| peer.info.node_id)
            .collect();
        silent
            .into_iter()
            .map(|node_id| Change::Left {
                member: self.peers.remove(&node_id).expect("just found").info,
                why: LeftWhy::Silent,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(node_id: u8, incarnation: u64, started_at_ms: i64) -> MemberInfo {
        MemberInfo {
            node_id,
            incarnation,
            started_at_ms,
            cluster_addr: format!("127.0.0.1:71{node_id:02}"),
            roles: Role::ALL.to_vec(),
            api_addr: String::new(),
            ready: true,
        }
    }

    /// Feeds `steps` to a membership of node 1 (incarnation 10, started at
    /// 1,000) with a 1,000 ms timeout; checks the changes of each step and
    /// the member ids at the end.
    fn check(steps: &[(Step, Vec<Change>)], expected_ids: &[u8]) {
        let mut members = Membership::new(member(1, 10, 1_000), 1_000);
        for (i, (step, expected)) in steps.iter().enumerate() {
            let changes = match step {
                Step::Heard(info, now) => members.heard(info.clone(), *now),
                Step::Disconnected(node_id, incarnation, now) => {
                    members.disconnected(*node_id, *incarnation, *now)
                }
                Step::Expire(now) => members.expire(*now),
            };
            assert_eq!(&changes, expected, "step {i}: {step:?}");
        }
        assert_eq!(members.node_ids(), expected_ids);
    }

    #[derive(Debug)]
    enum Step {
        Heard(MemberInfo, Millis),
        Disconnected(u8, u64, Millis),
        Expire(Millis),
    }

    fn left(member: MemberInfo, why: LeftWhy) -> Change {
        Change::Left { member, why }
    }

    #[test]
    fn members_join_once_and_leave_when_disconnected_or_silent() {
        let two = member(2, 20, 900);
        let three = member(3, 30, 900);
        check(
            &[
                (
                    Step::Heard(two.clone(), 0),
                    vec![Change::Joined(two.clone())],
                ),
                (Step::Heard(two.clone(), 100), vec![]),
                (
                    Step::Heard(three.clone(), 100),
                    vec![Change::Joined(three.clone())],
                ),
                (Step::Expire(1_100), vec![]),
                (Step::Heard(three.clone(), 1_050), vec![]),
                // Two last heard at 100: silent for 1,001 ms.
                (
                    Step::Expire(1_101),
                    vec![left(two.clone(), LeftWhy::Silent)],
                ),
                (
                    Step::Disconnected(3, 30, 1_150),
                    vec![left(three.clone(), LeftWhy::Disconnected)],
                ),
                (Step::Heard(two.clone(), 1_200), vec![Change::Joined(two)]),
                // A heartbeat the killed process sent before it died is no
                // rejoin; after a failure timeout the same process may
                // come back (its connection broke, it lives).
                (Step::Heard(three.clone(), 1_300), vec![]),
                (
                    Step::Heard(three.clone(), 2_200),
                    vec![Change::Joined(three)],
                ),
            ],
            &[1, 2, 3],
        );
    }

    #[test]
    fn a_restart_is_admitted_once_its_predecessor_is_gone() {
        let before = member(2, 20, 900);
        let after = member(2, 21, 5_000);
        check(
            &[
                (
                    Step::Heard(before.clone(), 0),
                    vec![Change::Joined(before.clone())],
                ),
                // Still heard from: the newcomer waits.
                (Step::Heard(after.clone(), 10), vec![]),
                // A close of the newcomer's connection is not the member's.
                (Step::Disconnected(2, 21, 15), vec![]),
                (
                    Step::Disconnected(2, 20, 15),
                    vec![left(before, LeftWhy::Disconnected)],
                ),
                (Step::Heard(after.clone(), 20), vec![Change::Joined(after)]),
            ],
            &[1, 2],
        );
    }

    #[test]
    fn the_later_of_two_processes_with_one_id_refuses() {
        let older = member(1, 11, 500);
        let newer = member(1, 9, 2_000);
        let same_start_lower = member(1, 9, 1_000);
        check(
            &[
                // Our own heartbeat, echoed: nothing.
                (Step::Heard(member(1, 10, 1_000), 0), vec![]),
                // A newer process with our id refuses itself; we keep running.
                (Step::Heard(newer, 0), vec![]),
                (
                    Step::Heard(older.clone(), 0),
                    vec![Change::Refused { by: older }],
                ),
                // Started in the same millisecond: the lower incarnation keeps it.
                (
                    Step::Heard(same_start_lower.clone(), 0),
                    vec![Change::Refused {
                        by: same_start_lower,
                    }],
                ),
            ],
            &[1],
        );
    }

    #[test]
    fn a_joining_process_yields_to_a_serving_one_with_its_id_whatever_the_clocks() {
        // This process is starting (not ready), its clock ahead of the
        // serving member's: it still refuses.
        let mut joining = member(1, 10, 1_000);
        joining.ready = false;
        let mut members = Membership::new(joining, 1_000);
        let serving_later_clock = member(1, 11, 5_000);
        assert_eq!(
            members.heard(serving_later_clock.clone(), 0),
            vec![Change::Refused {
                by: serving_later_clock
            }]
        );
        // A serving process does not yield to one that is starting.
        let mut members = Membership::new(member(1, 10, 5_000), 1_000);
        let mut starting_earlier_clock = member(1, 11, 1_000);
        starting_earlier_clock.ready = false;
        assert_eq!(members.heard(starting_earlier_clock, 0), vec![]);
    }

    #[test]
    fn node_names_round_trip() {
        let info = member(7, 0xdead_beef, 0);
        let name = info.node_name();
        assert_eq!(MemberInfo::parse_node_name(&name), Some((7, 0xdead_beef)));
        assert_eq!(
            MemberInfo::parse_node_name(&format!("{name}@127.0.0.1")),
            Some((7, 0xdead_beef))
        );
        assert_eq!(MemberInfo::parse_node_name("other-7-1"), None);
        assert_eq!(MemberInfo::parse_node_name("switchboard-300-1"), None);
    }
}
