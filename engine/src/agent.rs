//! Agents: who they are, what they can do and how much they can take at once.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::channel::Channel;
use crate::ids::{AgentId, GroupId};

/// What an agent's desktop shows and what they may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Basic ticket entry.
    Junior,
    /// Diagnostics and every channel.
    Expert,
    /// Acts on every session of their groups.
    Supervisor,
}

impl Role {
    /// The role named `name` (as [`Role::as_str`] writes it).
    pub fn parse(name: &str) -> Option<Role> {
        [Role::Junior, Role::Expert, Role::Supervisor]
            .into_iter()
            .find(|role| role.as_str() == name)
    }

    /// The name rules compare with (`agent.role == "expert"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Junior => "junior",
            Role::Expert => "expert",
            Role::Supervisor => "supervisor",
        }
    }
}

/// An agent's profile. Presence and current load live in [`crate::presence`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agent {
    /// Login name.
    pub id: AgentId,
    /// Shown to customers when a session is assigned.
    pub display_name: String,
    /// Desktop role.
    pub role: Role,
    /// Skill name → proficiency 1..=5; a missing skill counts as 0 in rules.
    #[serde(default)]
    pub skills: BTreeMap<String, u8>,
    /// The skill groups whose queues may offer sessions to this agent.
    #[serde(default)]
    pub groups: Vec<GroupId>,
    /// Languages the agent serves (`zh-CN`, `en`).
    #[serde(default)]
    pub languages: Vec<String>,
    /// How many sessions per channel at once.
    #[serde(default)]
    pub capacity: Capacity,
    /// The agent's SIP phone credentials, hashed: absent until a SIP password
    /// is set. Never shown outside the runtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sip: Option<SipCredentials>,
}

/// What a digest (RFC 7616 / 8760) check needs of a SIP password, and no
/// more: `HA1 = H(username:realm:password)` for each algorithm, in lowercase
/// hex. A change of realm makes them useless: set the password again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SipCredentials {
    /// The realm the hashes were made for.
    pub realm: String,
    /// `MD5(username:realm:password)`.
    pub ha1_md5: String,
    /// `SHA-256(username:realm:password)`.
    pub ha1_sha256: String,
}

/// Concurrent-session limits per channel, after Salesforce Omni-Channel
/// capacity and Genesys utilization: e.g. 1 phone call, or up to 3 chats, and a
/// call blocks chats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capacity {
    /// Most sessions at once per channel; a channel not listed is never offered.
    pub limits: BTreeMap<Channel, u16>,
    /// Channels that need the agent's whole attention: a session on one of
    /// them is offered only to an agent with no other session, and while it is
    /// active nothing else is offered.
    #[serde(default)]
    pub exclusive: BTreeSet<Channel>,
}

impl Default for Capacity {
    /// One call or three chats on every built-in channel, five emails.
    fn default() -> Self {
        let limits = Channel::BUILT_IN
            .iter()
            .map(|channel| {
                let limit = match channel {
                    Channel::Phone => 1,
                    Channel::Email => 5,
                    _ => 3,
                };
                (channel.clone(), limit)
            })
            .collect();
        Capacity {
            limits,
            exclusive: BTreeSet::from([Channel::Phone]),
        }
    }
}

/// Sessions an agent holds right now, per channel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Load {
    by_channel: BTreeMap<Channel, u16>,
}

impl Load {
    /// Sessions on `channel`.
    pub fn on(&self, channel: &Channel) -> u16 {
        self.by_channel.get(channel).copied().unwrap_or(0)
    }

    /// Sessions on every channel.
    pub fn total(&self) -> u32 {
        self.by_channel.values().map(|&n| u32::from(n)).sum()
    }

    /// One more session on `channel`.
    pub fn add(&mut self, channel: &Channel) {
        *self.by_channel.entry(channel.clone()).or_insert(0) += 1;
    }

    /// One session fewer on `channel`; never below zero.
    pub fn remove(&mut self, channel: &Channel) {
        if let Some(n) = self.by_channel.get_mut(channel) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.by_channel.remove(channel);
            }
        }
    }

    /// The channels with at least one session.
    pub fn channels(&self) -> impl Iterator<Item = &Channel> {
        self.by_channel.keys()
    }
}

impl Capacity {
    /// Whether an agent carrying `load` can take one more session on `channel`.
    pub fn can_take(&self, load: &Load, channel: &Channel) -> bool {
        let limit = self.limits.get(channel).copied().unwrap_or(0);
        if load.on(channel) >= limit {
            return false;
        }
        let blocked_by_exclusive = load
            .channels()
            .any(|held| held != channel && self.exclusive.contains(held));
        if blocked_by_exclusive {
            return false;
        }
        let wants_whole_attention = self.exclusive.contains(channel);
        !(wants_whole_attention && load.total() > 0)
    }

    /// Whether [`Capacity::can_take`] holds for at least one listed channel;
    /// one pass instead of one full check per channel, since every group
    /// queue asks it on each status report.
    pub fn can_take_any(&self, load: &Load) -> bool {
        if load.total() == 0 {
            return self.limits.values().any(|&limit| limit > 0);
        }
        // A session on an exclusive channel blocks every channel, its own included.
        if load.channels().any(|held| self.exclusive.contains(held)) {
            return false;
        }
        self.limits
            .iter()
            .any(|(channel, &limit)| !self.exclusive.contains(channel) && load.on(channel) < limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(sessions: &[Channel]) -> Load {
        let mut load = Load::default();
        for channel in sessions {
            load.add(channel);
        }
        load
    }

    fn check(held: &[Channel], offered: Channel, expected: bool) {
        let capacity = Capacity::default();
        assert_eq!(
            capacity.can_take(&load(held), &offered),
            expected,
            "holding {held:?}, offered {offered:?}"
        );
    }

    #[test]
    fn default_capacity_one_call_or_three_chats() {
        use Channel::*;
        check(&[], Phone, true);
        check(&[], Web, true);
        check(&[Web, Web], Web, true);
        check(&[Web, Web, Web], Web, false);
        check(&[Web, Web, Web], Wechat, true);
        check(&[Phone], Web, false);
        check(&[Phone], Phone, false);
        check(&[Web], Phone, false);
        check(&[Email, Email, Email, Email], Email, true);
        check(&[Email, Email, Email, Email, Email], Email, false);
        check(&[], Channel::parse("line").unwrap(), false);
    }

    #[test]
    fn can_take_any_agrees_with_can_take_on_every_channel() {
        use Channel::*;
        let line = Channel::parse("line").unwrap();
        let capacities = [
            Capacity::default(),
            Capacity {
                limits: BTreeMap::from([(Phone, 1)]),
                exclusive: BTreeSet::from([Phone]),
            },
            Capacity {
                limits: BTreeMap::from([(Phone, 2), (Web, 0), (line.clone(), 1)]),
                exclusive: BTreeSet::from([Phone, line.clone()]),
            },
            Capacity {
                limits: BTreeMap::from([(Web, 2), (Wechat, 1)]),
                exclusive: BTreeSet::new(),
            },
            Capacity {
                limits: BTreeMap::new(),
                exclusive: BTreeSet::new(),
            },
        ];
        let loads: [&[Channel]; 9] = [
            &[],
            &[Phone],
            &[Phone, Phone],
            &[Web],
            &[Web, Web],
            &[Web, Web, Wechat],
            &[
                Web, Web, Web, Wechat, Wechat, Wechat, App, App, App, Qq, Qq, Qq,
            ],
            &[Email, Email, Email, Email, Email, Sms],
            std::slice::from_ref(&line),
        ];
        for capacity in &capacities {
            for held in loads {
                let load = load(held);
                let expected = capacity.limits.keys().any(|c| capacity.can_take(&load, c));
                assert_eq!(
                    capacity.can_take_any(&load),
                    expected,
                    "{capacity:?} holding {held:?}"
                );
            }
        }
    }

    #[test]
    fn load_never_goes_negative() {
        let mut load = load(&[Channel::Web]);
        load.remove(&Channel::Web);
        load.remove(&Channel::Web);
        assert_eq!(load.total(), 0);
        assert_eq!(load.on(&Channel::Web), 0);
    }
}
