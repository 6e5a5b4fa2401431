//! `[store]`: which backend holds the data, and opening it.
//!
//! The embedded SQLite store is the default and needs nothing. The ScyllaDB
//! backend is chosen with `backend = "scylla"`; its settings are the
//! `scylla_*` keys, so that each can also be set from the environment
//! (`SWITCHBOARD_STORE_SCYLLA_CONTACT_POINTS=10.0.0.1:9042,10.0.0.2:9042`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use engine::secret::Secret;
use serde::{Deserialize, Serialize};
use store::scylla::{parse_consistency, parse_serial_consistency};
use store::{
    Replication, ScyllaOptions, ScyllaStore, SqliteOptions, SqliteStore, Store, Synchronous,
};

/// Where data lives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `sqlite` (embedded, the default) or `scylla`.
    pub backend: String,
    /// Folder of the SQLite file and the generated signing secret (used by
    /// both backends for the secret).
    pub data_dir: PathBuf,
    /// SQLite: `full` (the default) fsyncs every commit, so an acknowledged
    /// message survives a power loss; `normal` skips that fsync (WAL mode),
    /// so it survives `kill -9` but not a power loss, for a lower write tail.
    pub sqlite_synchronous: String,
    /// SQLite: how long after a commit a background thread copies the WAL
    /// into the database file (a checkpoint), off the commits' path; 0 lets
    /// the commit that fills the WAL do it, as SQLite does by default.
    pub sqlite_checkpoint_interval_ms: u64,
    /// ScyllaDB nodes, `host:port`; the driver discovers the rest of the cluster.
    pub scylla_contact_points: Vec<String>,
    /// Created at start-up if missing.
    pub scylla_keyspace: String,
    /// `SimpleStrategy` or `NetworkTopologyStrategy`, used when the keyspace is created.
    pub scylla_replication_class: String,
    /// Copies of each row (SimpleStrategy, and each data center that names no factor).
    pub scylla_replication_factor: u32,
    /// NetworkTopologyStrategy data centers: `"dc1"` or `"dc1:3"`.
    pub scylla_datacenters: Vec<String>,
    /// The data center this node prefers; empty: all alike.
    pub scylla_local_datacenter: String,
    /// Of every read and write: `local_quorum` unless you know better.
    pub scylla_consistency: String,
    /// Of lightweight transactions: `local_serial` or `serial`.
    pub scylla_serial_consistency: String,
    /// Connecting as a whole, not just the TCP connect.
    pub scylla_connect_timeout_ms: u64,
    /// Every request, retries included.
    pub scylla_request_timeout_ms: u64,
    /// Password authentication; empty: none.
    pub scylla_username: String,
    /// Set it from the environment (`SWITCHBOARD_STORE_SCYLLA_PASSWORD`), not
    /// the file. Shown as `<redacted>` by `check-config` and in logs.
    pub scylla_password: Secret,
}

impl Default for StoreConfig {
    fn default() -> Self {
        let scylla = ScyllaOptions::default();
        StoreConfig {
            backend: "sqlite".into(),
            data_dir: PathBuf::from("data"),
            sqlite_synchronous: "full".into(),
            sqlite_checkpoint_interval_ms: SqliteOptions::default()
                .checkpoint_interval
                .map_or(0, |interval| interval.as_millis() as u64),
            scylla_contact_points: scylla.contact_points,
            scylla_keyspace: scylla.keyspace,
            scylla_replication_class: "SimpleStrategy".into(),
            scylla_replication_factor: 1,
            scylla_datacenters: Vec::new(),
            scylla_local_datacenter: String::new(),
            scylla_consistency: "local_quorum".into(),
            scylla_serial_consistency: "local_serial".into(),
            scylla_connect_timeout_ms: scylla.connect_timeout.as_millis() as u64,
            scylla_request_timeout_ms: scylla.request_timeout.as_millis() as u64,
            scylla_username: String::new(),
            scylla_password: Secret::default(),
        }
    }
}

type KeyError = (&'static str, String);

impl StoreConfig {
    /// The SQLite file.
    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir.join("switchboard.db")
    }

    /// Checks the backend's settings; returns the bad key and why.
    pub fn validate(&self) -> Result<(), KeyError> {
        match self.backend.as_str() {
            "sqlite" => self.sqlite_options().map(|_| ()),
            "scylla" => self.scylla_options().map(|_| ()),
            other => Err((
                "store.backend",
                format!("unknown backend `{other}`; one of sqlite, scylla"),
            )),
        }
    }

    /// The ScyllaDB options these keys describe.
    pub fn scylla_options(&self) -> Result<ScyllaOptions, KeyError> {
        let replication = match self.scylla_replication_class.as_str() {
            "SimpleStrategy" => Replication::Simple {
                factor: self.scylla_replication_factor,
            },
            "NetworkTopologyStrategy" => Replication::NetworkTopology {
                datacenters: self.datacenters()?,
            },
            other => {
                return Err((
                    "store.scylla_replication_class",
                    format!(
                        "unknown class `{other}`; one of SimpleStrategy, NetworkTopologyStrategy"
                    ),
                ));
            }
        };
        let options = ScyllaOptions {
            contact_points: self.scylla_contact_points.clone(),
            keyspace: self.scylla_keyspace.clone(),
            replication,
            consistency: parse_consistency(&self.scylla_consistency)
                .map_err(|why| ("store.scylla_consistency", why))?,
            serial_consistency: parse_serial_consistency(&self.scylla_serial_consistency)
                .map_err(|why| ("store.scylla_serial_consistency", why))?,
            local_datacenter: Some(self.scylla_local_datacenter.clone())
                .filter(|dc| !dc.is_empty()),
            connect_timeout: Duration::from_millis(self.scylla_connect_timeout_ms),
            request_timeout: Duration::from_millis(self.scylla_request_timeout_ms),
            credentials: (!self.scylla_username.is_empty())
                .then(|| (self.scylla_username.clone(), self.scylla_password.clone())),
        };
        options
            .validate()
            .map_err(|(field, why)| (scylla_key(field), why))?;
        Ok(options)
    }

    fn datacenters(&self) -> Result<BTreeMap<String, u32>, KeyError> {
        let key = "store.scylla_datacenters";
        let mut datacenters = BTreeMap::new();
        for entry in &self.scylla_datacenters {
            let (name, factor) = match entry.split_once(':') {
                None => (entry.as_str(), self.scylla_replication_factor),
                Some((name, factor)) => {
                    let factor = factor.trim().parse().map_err(|_| {
                        (
                            key,
                            format!("`{entry}`: the factor after `:` must be a number"),
                        )
                    })?;
                    (name, factor)
                }
            };
            datacenters.insert(name.trim().to_owned(), factor);
        }
        Ok(datacenters)
    }

    /// Opens the configured backend (connecting, and migrating a Scylla keyspace).
    pub async fn open(&self) -> anyhow::Result<Arc<dyn Store>> {
        match self.backend.as_str() {
            "scylla" => {
                let options = self
                    .scylla_options()
                    .map_err(|(key, why)| anyhow::anyhow!("config key `{key}`: {why}"))?;
                let store = ScyllaStore::connect(options)
                    .await
                    .context("failed to open the ScyllaDB store")?;
                Ok(Arc::new(store))
            }
            _ => {
                std::fs::create_dir_all(&self.data_dir).with_context(|| {
                    format!(
                        "failed to create data directory {}",
                        self.data_dir.display()
                    )
                })?;
                let path = self.sqlite_path();
                let options = self
                    .sqlite_options()
                    .map_err(|(key, why)| anyhow::anyhow!("config key `{key}`: {why}"))?;
                let store = SqliteStore::open_with(&path, options)
                    .with_context(|| format!("failed to open store {}", path.display()))?;
                Ok(Arc::new(store))
            }
        }
    }

    /// The SQLite settings; the bad key and why.
    pub fn sqlite_options(&self) -> Result<SqliteOptions, KeyError> {
        let synchronous = match self.sqlite_synchronous.as_str() {
            "full" => Synchronous::Full,
            "normal" => Synchronous::Normal,
            other => {
                return Err((
                    "store.sqlite_synchronous",
                    format!("unknown mode `{other}`; one of full, normal"),
                ));
            }
        };
        Ok(SqliteOptions {
            synchronous,
            checkpoint_interval: (self.sqlite_checkpoint_interval_ms > 0)
                .then(|| Duration::from_millis(self.sqlite_checkpoint_interval_ms)),
            ..SqliteOptions::default()
        })
    }

    /// Where the data is, for the start-up banner.
    pub fn describe(&self) -> String {
        match self.backend.as_str() {
            "scylla" => format!(
                "ScyllaDB {} keyspace {}",
                self.scylla_contact_points.join(","),
                self.scylla_keyspace
            ),
            _ => format!("SQLite {}", self.sqlite_path().display()),
        }
    }
}

/// The config key of a [`ScyllaOptions::validate`] field.
fn scylla_key(field: &str) -> &'static str {
    match field {
        "contact_points" => "store.scylla_contact_points",
        "keyspace" => "store.scylla_keyspace",
        "replication_factor" => "store.scylla_replication_factor",
        "datacenters" => "store.scylla_datacenters",
        "local_datacenter" => "store.scylla_local_datacenter",
        "connect_timeout_ms" => "store.scylla_connect_timeout_ms",
        "request_timeout_ms" => "store.scylla_request_timeout_ms",
        _ => "store",
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    fn load(toml: &str, env: &[(&str, &str)]) -> Result<Config, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("switchboard.toml");
        std::fs::write(&path, toml).unwrap();
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Config::load(Some(&path), env).map_err(|e| e.to_string())
    }

    #[test]
    fn embedded_store_is_the_default() {
        assert_eq!(StoreConfig::default().backend, "sqlite");
        assert_eq!(StoreConfig::default().validate(), Ok(()));
    }

    #[test]
    fn sqlite_durability_and_checkpoints_are_settings() {
        let options = StoreConfig::default().sqlite_options().unwrap();
        assert_eq!(options.synchronous, Synchronous::Full);
        assert_eq!(
            options.checkpoint_interval,
            Some(Duration::from_millis(500))
        );
        let config = load(
            "[store]\nsqlite_synchronous = \"normal\"\nsqlite_checkpoint_interval_ms = 0\n",
            &[],
        )
        .unwrap();
        let options = config.store.sqlite_options().unwrap();
        assert_eq!(options.synchronous, Synchronous::Normal);
        assert_eq!(options.checkpoint_interval, None);
        assert_eq!(
            load("[store]\nsqlite_synchronous = \"off\"\n", &[]).unwrap_err(),
            "config key `store.sqlite_synchronous`: unknown mode `off`; one of full, normal"
        );
    }

    #[test]
    fn scylla_settings_from_file_and_environment() {
        let config = load(
            "[store]\nbackend = \"scylla\"\nscylla_replication_class = \"NetworkTopologyStrategy\"\n\
             scylla_datacenters = [\"dc1\", \"dc2:2\"]\nscylla_replication_factor = 3\n",
            &[
                ("SWITCHBOARD_STORE_SCYLLA_CONTACT_POINTS", "10.0.0.1:9042, 10.0.0.2:9042"),
                ("SWITCHBOARD_STORE_SCYLLA_CONSISTENCY", "quorum"),
                ("SWITCHBOARD_STORE_SCYLLA_REQUEST_TIMEOUT_MS", "750"),
            ],
        )
        .unwrap();
        let options = config.store.scylla_options().unwrap();
        assert_eq!(options.contact_points, ["10.0.0.1:9042", "10.0.0.2:9042"]);
        assert_eq!(
            options.replication,
            Replication::NetworkTopology {
                datacenters: BTreeMap::from([("dc1".into(), 3), ("dc2".into(), 2)])
            }
        );
        assert_eq!(options.consistency, store::scylla::Consistency::Quorum);
        assert_eq!(options.request_timeout, Duration::from_millis(750));
        assert_eq!(options.credentials, None);
    }

    #[test]
    fn bad_scylla_settings_name_the_key() {
        let check = |toml: &str, expected: &str| {
            let toml = format!("[store]\nbackend = \"scylla\"\n{toml}");
            assert_eq!(load(&toml, &[]).unwrap_err(), expected);
        };
        check(
            "scylla_consistency = \"most\"\n",
            "config key `store.scylla_consistency`: unknown consistency `most`; one of any, one, two, three, quorum, all, local_quorum, each_quorum, local_one",
        );
        check(
            "scylla_keyspace = \"my-data\"\n",
            "config key `store.scylla_keyspace`: `my-data` is not a CQL name: a letter, then letters, digits or `_`, at most 48",
        );
        check(
            "scylla_replication_class = \"Everywhere\"\n",
            "config key `store.scylla_replication_class`: unknown class `Everywhere`; one of SimpleStrategy, NetworkTopologyStrategy",
        );
        check(
            "scylla_replication_class = \"NetworkTopologyStrategy\"\nscylla_datacenters = [\"dc1:x\"]\n",
            "config key `store.scylla_datacenters`: `dc1:x`: the factor after `:` must be a number",
        );
        check(
            "scylla_connect_timeout_ms = 0\n",
            "config key `store.scylla_connect_timeout_ms`: must be greater than 0",
        );
        // The sqlite backend does not look at the scylla keys.
        let config = load("[store]\nscylla_consistency = \"most\"\n", &[]).unwrap();
        assert_eq!(config.store.backend, "sqlite");
    }
}
