//! The `[cluster]` section of the configuration.

use std::net::SocketAddr;
use std::time::Duration;

use engine::secret::Secret;
use serde::{Deserialize, Serialize};

/// How this node takes part in a cluster. With `listen` empty the node runs
/// alone (the default), and only `node_id` matters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// This node's id, 0–255. It is part of every id the node mints
    /// (sessions, tickets), so the nodes of one store need distinct ids; a
    /// node whose id a live member already has refuses to start.
    pub node_id: u8,
    /// Where other nodes connect (`ip:port`, node-to-node TCP); empty = no
    /// cluster. Port 0 picks a free port (tests), which the banner prints.
    pub listen: String,
    /// Nodes to join through (`ip:port` of their `cluster.listen`); listing
    /// every node, this one included, is fine and lets any restart find the
    /// others. Unanswered seeds are retried every second.
    pub seeds: Vec<String>,
    /// The shared secret nodes authenticate each other with (ractor_cluster's
    /// magic cookie); at least 16 characters, the same on every node.
    pub cookie: Secret,
    /// How often a node tells every other that it is alive.
    pub heartbeat_ms: u64,
    /// A member not heard from for this long is removed (a hung process, a
    /// lost network). A process that exits or is killed is removed at once:
    /// its connections close.
    pub failure_timeout_ms: u64,
    /// What this node does (docs/cluster.md, "Roles"): `edge` serves
    /// customers', agents' and platforms' connections and the REST API;
    /// `core` runs the routing actors (skill groups, agents, sessions, the
    /// customer index); `workers` delivers the outbox (webhooks, channel
    /// replies, session summaries). Every role by default; a node outside
    /// a cluster runs them all.
    pub roles: Vec<Role>,
}

/// One thing a node may do in a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sockets and the HTTP API.
    Edge,
    /// Routing: the actors placed by `engine::placement`.
    Core,
    /// Outbox delivery.
    Workers,
}

impl Role {
    /// Every role, in order.
    pub const ALL: [Role; 3] = [Role::Edge, Role::Core, Role::Workers];

    /// Its name in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Edge => "edge",
            Role::Core => "core",
            Role::Workers => "workers",
        }
    }

    /// The role a name gives, if any.
    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == name.trim())
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            node_id: 0,
            listen: String::new(),
            seeds: Vec::new(),
            cookie: Secret::default(),
            heartbeat_ms: 200,
            failure_timeout_ms: 1_000,
            roles: Role::ALL.to_vec(),
        }
    }
}

/// Shortest cookie accepted: a guessable one would let anyone on the
/// network join and send messages to the runtime.
pub const MIN_COOKIE_CHARS: usize = 16;

impl ClusterConfig {
    /// Whether this node joins a cluster at all.
    pub fn enabled(&self) -> bool {
        !self.listen.trim().is_empty()
    }

    /// Checks every key; the error names the key (`cluster.<key>`) and why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.roles.is_empty() {
            return Err((
                "cluster.roles",
                "must name at least one of edge, core, workers".into(),
            ));
        }
        if !self.enabled() {
            if Role::ALL.iter().any(|role| !self.roles.contains(role)) {
                return Err((
                    "cluster.roles",
                    "a node outside a cluster (cluster.listen empty) runs every role: edge, core, workers".into(),
                ));
            }
            return Ok(());
        }
        self.listen_addr()
            .map_err(|reason| ("cluster.listen", reason))?;
        self.seed_addrs()
            .map_err(|reason| ("cluster.seeds", reason))?;
        if self.cookie.len() < MIN_COOKIE_CHARS {
            return Err((
                "cluster.cookie",
                format!(
                    "must be at least {MIN_COOKIE_CHARS} characters (the same on every node) when cluster.listen is set"
                ),
            ));
        }
        if self.heartbeat_ms < 10 {
            return Err(("cluster.heartbeat_ms", "must be at least 10".into()));
        }
        if self.failure_timeout_ms < 2 * self.heartbeat_ms {
            return Err((
                "cluster.failure_timeout_ms",
                format!(
                    "must be at least twice cluster.heartbeat_ms ({}), or one late heartbeat removes a live member",
                    self.heartbeat_ms
                ),
            ));
        }
        Ok(())
    }

    /// `listen` as an address.
    pub fn listen_addr(&self) -> Result<SocketAddr, String> {
        self.listen
            .trim()
            .parse()
            .map_err(|_| format!("`{}` is not an ip:port address", self.listen))
    }

    /// `seeds` as addresses.
    pub fn seed_addrs(&self) -> Result<Vec<SocketAddr>, String> {
        self.seeds
            .iter()
            .filter(|seed| !seed.trim().is_empty())
            .map(|seed| {
                seed.trim()
                    .parse()
                    .map_err(|_| format!("`{seed}` is not an ip:port address"))
            })
            .collect()
    }

    /// Whether this node has `role`.
    pub fn runs(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// [`ClusterConfig::heartbeat_ms`] as a duration.
    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms)
    }

    /// [`ClusterConfig::failure_timeout_ms`] as a duration.
    pub fn failure_timeout(&self) -> Duration {
        Duration::from_millis(self.failure_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(change: impl FnOnce(&mut ClusterConfig), expected: Result<(), &str>) {
        let mut config = ClusterConfig {
            listen: "127.0.0.1:7100".into(),
            seeds: vec!["127.0.0.1:7101".into()],
            cookie: Secret::from("a-cookie-of-enough-length"),
            ..ClusterConfig::default()
        };
        change(&mut config);
        assert_eq!(config.validate().map_err(|(key, _)| key), expected);
    }

    #[test]
    fn every_bad_key_is_named() {
        check(|_| {}, Ok(()));
        check(|config| config.listen = String::new(), Ok(()));
        check(
            |config| config.listen = "nowhere".into(),
            Err("cluster.listen"),
        );
        check(
            |config| config.seeds.push("x:y".into()),
            Err("cluster.seeds"),
        );
        check(
            |config| config.cookie = Secret::from("short"),
            Err("cluster.cookie"),
        );
        check(
            |config| config.heartbeat_ms = 1,
            Err("cluster.heartbeat_ms"),
        );
        check(
            |config| config.failure_timeout_ms = 300,
            Err("cluster.failure_timeout_ms"),
        );
        check(|config| config.roles = vec![Role::Edge], Ok(()));
        check(|config| config.roles.clear(), Err("cluster.roles"));
        check(
            |config| {
                config.listen = String::new();
                config.roles = vec![Role::Core];
            },
            Err("cluster.roles"),
        );
    }

    #[test]
    fn roles_read_by_name() {
        let config: ClusterConfig =
            serde_json::from_str(r#"{"roles": ["edge", "workers"]}"#).unwrap();
        assert_eq!(config.roles, vec![Role::Edge, Role::Workers]);
        assert!(config.runs(Role::Edge) && !config.runs(Role::Core));
        let err = serde_json::from_str::<ClusterConfig>(r#"{"roles": ["router"]}"#).unwrap_err();
        assert!(err.to_string().contains("edge"), "{err}");
        assert_eq!(Role::parse(" core"), Some(Role::Core));
        assert_eq!(Role::parse("router"), None);
    }
}
