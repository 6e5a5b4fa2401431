//! Which node of a cluster runs which actor: rendezvous (highest random
//! weight) hashing over the live members.
//!
//! Every node computes the same owner from the same member set, with no
//! table to agree on; when a member leaves only its keys move (each to the
//! member that scored second for it), and a member that joins takes about
//! `1/n` of the keys, from every other member alike.
//!
//! The hash is written here (FNV-1a, then a SplitMix64 finaliser) rather than
//! taken from `std`, whose hasher may change between Rust releases: two
//! nodes built by different compilers must still agree.

use crate::ids::{AgentId, CustomerId, GroupId, SessionId};

/// The live members that run actors, and who owns what among them. Every
/// node computes the same answers from the same member set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Ascending, without duplicates; never empty.
    members: Vec<u8>,
}

impl Placement {
    /// Placement over `members` (this node is always one of them).
    pub fn new(members: impl IntoIterator<Item = u8>) -> Placement {
        let mut members: Vec<u8> = members.into_iter().collect();
        members.sort_unstable();
        members.dedup();
        assert!(!members.is_empty(), "a placement has at least this node");
        Placement { members }
    }

    /// The members, ascending.
    pub fn members(&self) -> &[u8] {
        &self.members
    }

    /// The node that runs skill group `group`.
    pub fn group(&self, group: &GroupId) -> u8 {
        self.by_key(b"group:", group.as_str().as_bytes())
    }

    /// The node that runs agent `agent`.
    pub fn agent(&self, agent: &AgentId) -> u8 {
        self.by_key(b"agent:", agent.as_str().as_bytes())
    }

    /// The node that knows `customer`'s open session and opens new ones.
    pub fn customer(&self, customer: &CustomerId) -> u8 {
        self.by_key(b"customer:", customer.as_str().as_bytes())
    }

    /// The node that runs session `session`: the node that minted it while
    /// that node is a member (a conversation stays where it began), else
    /// the rendezvous owner of its id.
    pub fn session(&self, session: SessionId) -> u8 {
        let minted_by = crate::ids::node_of(session);
        if self.members.binary_search(&minted_by).is_ok() {
            return minted_by;
        }
        self.by_key(b"session:", &session.0.to_be_bytes())
    }

    fn by_key(&self, kind: &[u8], key: &[u8]) -> u8 {
        let mut bytes = Vec::with_capacity(kind.len() + key.len());
        bytes.extend_from_slice(kind);
        bytes.extend_from_slice(key);
        owner(&bytes, self.members.iter().copied()).expect("never empty")
    }
}

/// A key's score on one node; the highest score owns the key.
pub fn score(node_id: u8, key: &[u8]) -> u64 {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = FNV_OFFSET;
    for byte in key.iter().chain(std::iter::once(&node_id)) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    // FNV alone mixes the last byte (the node) poorly into the high bits.
    hash ^= hash >> 30;
    hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash ^= hash >> 27;
    hash = hash.wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

/// The member of `members` that owns `key`, or `None` with no members.
/// Ties (astronomically rare) go to the lower node id.
pub fn owner(key: &[u8], members: impl IntoIterator<Item = u8>) -> Option<u8> {
    members
        .into_iter()
        .max_by_key(|node_id| (score(*node_id, key), std::cmp::Reverse(*node_id)))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    fn keys(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("group:g{i}")).collect()
    }

    fn owners(keys: &[String], members: &[u8]) -> Vec<u8> {
        keys.iter()
            .map(|key| owner(key.as_bytes(), members.iter().copied()).unwrap())
            .collect()
    }

    #[test]
    fn a_session_stays_on_the_node_that_minted_it_while_that_node_is_a_member() {
        let mut ids = crate::ids::SessionIdGen::new(2);
        let session = ids.next(1_000);
        assert_eq!(Placement::new([1, 2, 3]).session(session), 2);
        let elsewhere = Placement::new([1, 3]).session(session);
        assert!([1, 3].contains(&elsewhere));
        // Every survivor computes the same new home.
        assert_eq!(Placement::new([3, 1]).session(session), elsewhere);
    }

    #[test]
    fn kinds_of_actor_with_one_name_are_placed_apart() {
        let placement = Placement::new(1..=16);
        let n_same = (0..200)
            .filter(|i| {
                let name = format!("x{i}");
                placement.group(&GroupId::new(name.clone())) == placement.agent(&AgentId::new(name))
            })
            .count();
        // 1 in 16 by chance: about 12 of 200.
        assert!(
            n_same < 40,
            "{n_same} of 200 agents sit with their namesake group"
        );
    }

    #[test]
    fn no_members_no_owner() {
        assert_eq!(owner(b"group:a", []), None);
        assert_eq!(owner(b"group:a", [7]), Some(7));
    }

    #[test]
    fn keys_spread_evenly_over_three_members() {
        let keys = keys(30_000);
        let mut counts = BTreeMap::new();
        for node in owners(&keys, &[1, 2, 3]) {
            *counts.entry(node).or_insert(0usize) += 1;
        }
        for (node, count) in counts {
            // 10,000 expected; 5 % either way is far outside chance.
            assert!((9_500..=10_500).contains(&count), "node {node}: {count}");
        }
    }

    #[test]
    fn a_leaving_member_moves_only_its_own_keys() {
        let keys = keys(5_000);
        let before = owners(&keys, &[1, 2, 3, 4]);
        let after = owners(&keys, &[1, 2, 4]);
        for (was, now) in before.iter().zip(&after) {
            if *was != 3 {
                assert_eq!(was, now, "a key of a surviving member moved");
            }
        }
    }

    #[test]
    fn a_joining_member_takes_about_its_share_and_nothing_else_moves() {
        let keys = keys(8_000);
        let before = owners(&keys, &[1, 2, 3]);
        let after = owners(&keys, &[1, 2, 3, 4]);
        let mut n_moved = 0;
        for (was, now) in before.iter().zip(&after) {
            if was != now {
                assert_eq!(*now, 4, "a key moved between old members");
                n_moved += 1;
            }
        }
        assert!(
            (1_800..=2_200).contains(&n_moved),
            "{n_moved} of 8,000 moved"
        );
    }

    proptest! {
        #[test]
        fn the_owner_does_not_depend_on_member_order(
            key in proptest::collection::vec(any::<u8>(), 0..40),
            mut members in proptest::collection::btree_set(any::<u8>(), 1..8)
                .prop_map(|set| set.into_iter().collect::<Vec<_>>()),
        ) {
            let forward = owner(&key, members.iter().copied());
            members.reverse();
            prop_assert_eq!(forward, owner(&key, members.iter().copied()));
            prop_assert!(members.contains(&forward.unwrap()));
        }
    }
}
