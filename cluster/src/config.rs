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
        if !self.enabled() {
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
    }
}
