//! Customers: one person across every channel.

use serde::{Deserialize, Serialize};

use crate::Millis;
use crate::channel::Channel;
use crate::ids::{AgentId, CustomerId};

/// A customer profile, as routing rules and the agent's 360° view see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Customer {
    /// Stable id, the same on every channel.
    pub id: CustomerId,
    /// How agents address the customer.
    pub display_name: String,
    /// Service tier (`standard`, `vip`, …); rules route on it.
    #[serde(default = "default_tier")]
    pub tier: String,
    /// Free-form labels (`complaint`, `churn-risk`) that rules can test with `HAS`.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Preferred language (BCP 47, e.g. `zh-CN`), matched against agents' languages.
    #[serde(default = "default_language")]
    pub language: String,
    /// The customer's ids on each channel; one person, many identities.
    #[serde(default)]
    pub identities: Vec<Identity>,
    /// The agent who last served this customer, for sticky routing.
    #[serde(default)]
    pub last_agent: Option<AgentId>,
    /// When the profile was created.
    #[serde(default)]
    pub created_at: Millis,
}

/// The customer's id on one channel (`("wechat", "o6_bmjrPTlm6_2sgVt7hMZOPfL2M")`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Identity {
    /// The channel the id belongs to.
    pub channel: Channel,
    /// The id the channel uses for the customer.
    pub external_id: String,
}

impl std::fmt::Display for Identity {
    /// `wechat:12345`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.channel, self.external_id)
    }
}

fn default_tier() -> String {
    "standard".to_owned()
}

fn default_language() -> String {
    "zh-CN".to_owned()
}

impl Customer {
    /// A new standard-tier customer with no identities.
    pub fn new(id: impl Into<CustomerId>, display_name: impl Into<String>) -> Self {
        Customer {
            id: id.into(),
            display_name: display_name.into(),
            tier: default_tier(),
            tags: Vec::new(),
            language: default_language(),
            identities: Vec::new(),
            last_agent: None,
            created_at: 0,
        }
    }
}

impl From<String> for CustomerId {
    fn from(id: String) -> Self {
        CustomerId::new(id)
    }
}
