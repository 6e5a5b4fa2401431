//! Skill groups: a queue, its members and its service-level target.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::channel::Channel;
use crate::ids::GroupId;

/// A skill group (`gold_service`, `phone_support`, `default`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkillGroup {
    /// The name routing rules use.
    pub id: GroupId,
    /// Shown on dashboards.
    pub display_name: String,
    /// Answer within this many seconds to count as "in service level".
    #[serde(default = "default_sla_threshold_secs")]
    pub sla_threshold_secs: u32,
    /// Per-channel overrides of the threshold (email is usually hours, not seconds).
    #[serde(default)]
    pub sla_threshold_by_channel: BTreeMap<Channel, u32>,
    /// The service-level target in percent (80 means 80 % within the threshold).
    #[serde(default = "default_sla_target_pct")]
    pub sla_target_pct: f64,
    /// Contacts abandoned sooner than this are left out of service level.
    #[serde(default = "default_short_abandon_secs")]
    pub short_abandon_secs: u32,
}

fn default_sla_threshold_secs() -> u32 {
    30
}
fn default_sla_target_pct() -> f64 {
    80.0
}
fn default_short_abandon_secs() -> u32 {
    5
}

impl SkillGroup {
    /// A group with the default 80/30 service level.
    pub fn new(id: impl Into<GroupId>, display_name: impl Into<String>) -> Self {
        SkillGroup {
            id: id.into(),
            display_name: display_name.into(),
            sla_threshold_secs: default_sla_threshold_secs(),
            sla_threshold_by_channel: BTreeMap::new(),
            sla_target_pct: default_sla_target_pct(),
            short_abandon_secs: default_short_abandon_secs(),
        }
    }

    /// The service-level threshold for `channel`, in seconds.
    pub fn threshold_secs(&self, channel: &Channel) -> u32 {
        self.sla_threshold_by_channel
            .get(channel)
            .copied()
            .unwrap_or(self.sla_threshold_secs)
    }
}
