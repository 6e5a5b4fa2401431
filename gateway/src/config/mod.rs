//! The server's configuration: one typed struct, loaded from an optional TOML
//! file, then overridden by `SWITCHBOARD_<SECTION>_<KEY>` environment
//! variables, then validated. Every error names the bad key (and the
//! variable, when the value came from the environment).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use engine::secret::Secret;
use serde::{Deserialize, Serialize};
use thiserror::Error;

mod cors;
mod platform;
mod store;

pub use platform::{PlatformConfig, WebhookEndpoint, WebhooksConfig};
pub use store::StoreConfig;

/// Prefix of the environment variables that override the file.
pub const ENV_PREFIX: &str = "SWITCHBOARD_";

/// Everything the server can be told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Listening address and what to print.
    pub server: ServerConfig,
    /// Where data lives.
    pub store: StoreConfig,
    /// Token signing.
    pub auth: AuthConfig,
    /// What one client may do.
    pub limits: LimitsConfig,
    /// Rules and timers of the engine.
    pub routing: RoutingConfig,
    /// Demo data.
    pub demo: DemoConfig,
    /// Customer cache and summaries.
    pub platform: PlatformConfig,
    /// Outbound webhooks.
    pub webhooks: WebhooksConfig,
    /// How log lines are written.
    pub log: LogConfig,
    /// The phone channel: SIP endpoint, registrar, trunks (docs/voice.md).
    pub voice: voice::sip::VoiceConfig,
    /// Message-channel accounts, `[[channels]]` (docs/channels.md); from the
    /// file only, as environment variables cannot hold a list of tables.
    pub channels: Vec<channels::ChannelConfig>,
    /// This node's id, and how it joins other nodes (docs/cluster.md).
    pub cluster: cluster::ClusterConfig,
}

/// The public listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// WebSocket and REST; port 0 picks a free port (tests).
    pub listen: SocketAddr,
    /// Time given to open sockets to close on shutdown before they are dropped.
    pub shutdown_grace_ms: u64,
    /// The admin listener (`/metrics` for Prometheus): loopback by default,
    /// apart from the public one.
    pub admin_listen: SocketAddr,
    /// Serve the web pages (`/desktop`, `/chat`) from this folder instead of
    /// the copies built into the binary, so a page edit shows on reload;
    /// empty = built in.
    pub web_dir: PathBuf,
    /// Origins (`https://crm.example.com`) whose pages may call the REST API
    /// from a browser (CORS); empty = none (the default: the server's own
    /// pages need no CORS); `["*"]` = any origin.
    pub cors_allow_origins: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".parse().expect("valid default address"),
            shutdown_grace_ms: 5_000,
            admin_listen: "127.0.0.1:9464".parse().expect("valid default address"),
            web_dir: PathBuf::new(),
            cors_allow_origins: Vec::new(),
        }
    }
}

/// Token signing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// The HMAC key itself (at least 32 characters). When empty, the key is
    /// read from `secret_file`, which is created with a random key if missing.
    /// Shown as `<redacted>` by `check-config` and in logs.
    pub secret: Secret,
    /// Where the generated key is kept; relative paths are under `store.data_dir`.
    pub secret_file: PathBuf,
    /// Lifetime of tokens minted by `switchboard token` and the demo, in seconds.
    pub token_ttl_secs: u64,
    /// Lifetime of web visitor tokens issued by `POST /api/v1/visitors`, in seconds.
    pub visitor_ttl_secs: u64,
    /// Anyone may ask for a web visitor token (the public chat widget needs it).
    pub allow_visitors: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            secret: Secret::default(),
            secret_file: PathBuf::from("auth.secret"),
            token_ttl_secs: 12 * 3600,
            visitor_ttl_secs: 30 * 24 * 3600,
            allow_visitors: true,
        }
    }
}

/// Limits per connection and per process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Open TCP connections at once; 0 means "the open-file limit minus
    /// `reserved_fds`". Connections past the cap get a 503 and are closed.
    pub max_connections: usize,
    /// File descriptors kept free for the store, logs and listeners.
    pub reserved_fds: usize,
    /// Largest text frame that is processed; a larger one (up to
    /// `max_ws_message_bytes`) gets a `frame_too_large` error and the socket
    /// stays open. At least [`LimitsConfig::min_frame_bytes`], so that every
    /// valid body fits however its JSON is escaped.
    pub max_frame_bytes: usize,
    /// Largest WebSocket message read at all; past it the socket closes with 1009.
    pub max_ws_message_bytes: usize,
    /// Longest message body, in characters.
    pub max_body_chars: usize,
    /// Sustained client frames per second per connection.
    pub messages_per_second: u32,
    /// Frames a connection may send at once before the rate applies.
    pub message_burst: u32,
    /// Frames refused for rate in a row after which the socket closes with 1008.
    pub flood_close_after: u32,
    /// Events queued for one socket; a reader that falls further behind is
    /// closed with 4008 and resumes from its last `seq`.
    pub outbound_backlog: usize,
    /// A socket write that takes longer than this drops the connection.
    pub write_timeout_ms: u64,
    /// The server pings every socket this often (browsers and client
    /// libraries answer by themselves) ...
    pub ping_interval_ms: u64,
    /// ... and closes one it has heard nothing from (no frame, no pong) for
    /// this long with 4000: a half-open connection does not hold its place.
    pub idle_timeout_ms: u64,
    /// New sessions one customer may open per hour.
    pub new_sessions_per_customer_per_hour: u32,
    /// Largest REST request body.
    pub max_http_body_bytes: usize,
    /// Web visitors created per second by the whole server (`POST /api/v1/visitors`), after a burst.
    pub new_visitors_per_second: u32,
    /// See `new_visitors_per_second`.
    pub new_visitor_burst: u32,
    /// Connections one source address may hold at once; 0 = no limit
    /// apart from `max_connections` (the default: many agents may share
    /// one office address behind NAT).
    pub max_connections_per_address: usize,
    /// A connection must send a whole HTTP request head within this long of
    /// connecting or of its previous response, or it is closed: idle and
    /// slow-header (slowloris) connections do not hold a place under the cap.
    pub http_header_timeout_ms: u64,
    /// A REST request not answered within this long gets 504
    /// `request_timeout` (its outcome is then unknown; resend it).
    pub request_timeout_ms: u64,
}

impl LimitsConfig {
    /// Bytes of the longest JSON escape of one character: a character
    /// outside the Basic Multilingual Plane as a `\uXXXX\uXXXX` surrogate pair.
    pub const MAX_ESCAPED_CHAR_BYTES: usize = 12;
    /// Room for everything in a frame besides its body (or comment, or
    /// summary), escaped as verbosely as JSON allows: the keys, `type`, a
    /// 128-byte `request_id` and `client_message_id`, a session id.
    pub const FRAME_ENVELOPE_BYTES: usize = 4096;

    /// The smallest `max_frame_bytes` that lets every valid frame through: a
    /// body of `max_body_chars` characters, each written as a surrogate
    /// pair escape (Python's `json.dumps` escapes every non-ASCII
    /// character), plus the envelope.
    pub fn min_frame_bytes(&self) -> usize {
        self.max_body_chars
            .saturating_mul(Self::MAX_ESCAPED_CHAR_BYTES)
            .saturating_add(Self::FRAME_ENVELOPE_BYTES)
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_connections: 0,
            reserved_fds: 1024,
            max_frame_bytes: 56 * 1024,
            max_ws_message_bytes: 64 * 1024,
            max_body_chars: 4000,
            messages_per_second: 20,
            message_burst: 40,
            flood_close_after: 200,
            outbound_backlog: 512,
            write_timeout_ms: 10_000,
            ping_interval_ms: 30_000,
            idle_timeout_ms: 75_000,
            new_sessions_per_customer_per_hour: 30,
            max_http_body_bytes: 256 * 1024,
            new_visitors_per_second: 20,
            new_visitor_burst: 200,
            max_connections_per_address: 0,
            http_header_timeout_ms: 10_000,
            request_timeout_ms: 30_000,
        }
    }
}

/// Rules and engine timers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingConfig {
    /// A rules file (TOML, see docs/routing.md); empty means the built-in
    /// rules: VIP → gold_service, phone → phone_support, else default.
    pub rules_file: PathBuf,
    /// An offer not accepted in this time goes to the next agent.
    pub offer_timeout_ms: u64,
    /// Wrap-up time after an agent's last session ends.
    pub wrap_up_ms: u64,
    /// Idle sessions stop their actor after this long (they re-activate from the store).
    pub passivate_after_ms: u64,
    /// Sessions waiting in a queue (not offered) stop their actor after this
    /// long without activity; their place in line is kept.
    pub passivate_waiting_after_ms: u64,
    /// A waiting customer is told their queue position when it changed, at
    /// most this often.
    pub queue_update_ms: u64,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            rules_file: PathBuf::new(),
            offer_timeout_ms: 15_000,
            wrap_up_ms: 30_000,
            passivate_after_ms: 300_000,
            passivate_waiting_after_ms: 10_000,
            queue_update_ms: 5_000,
        }
    }
}

/// Demo data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DemoConfig {
    /// Seed groups, agents and customers into an empty store, and print
    /// ready-to-use tokens at start.
    pub enabled: bool,
    /// With the demo, run the phone channel on loopback (127.0.0.1:5060,
    /// calls from 127.0.0.0/8) unless `[voice]` is enabled, and print the
    /// demo agents' SIP passwords.
    pub phone: bool,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            enabled: true,
            phone: true,
        }
    }
}

/// Log output. Which lines are written is `RUST_LOG`'s business (the
/// `tracing_subscriber` filter syntax, `info` when unset).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` for people, `json` (one object a line) for log collectors;
    /// `--log-format` overrides it.
    pub format: LogFormat,
}

/// The shape of a log line on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable, one line per event.
    #[default]
    Text,
    /// One JSON object per line, with the event's fields and its spans.
    Json,
}

/// A configuration that cannot be used, naming the key at fault.
#[derive(Debug, Error, PartialEq)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        reason: String,
    },
    /// The file is not TOML.
    #[error("config file {path} is not valid TOML: {reason}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message (with line and column).
        reason: String,
    },
    /// A key's value is wrong (wrong type, unknown key, out of range).
    #[error("config key `{key}`{origin}: {reason}")]
    Key {
        /// Dotted key, e.g. `limits.max_connections`.
        key: String,
        /// ` (from SWITCHBOARD_…)` when an environment variable set it.
        origin: String,
        /// What is wrong.
        reason: String,
    },
}

impl Config {
    /// Reads `file` (if any), applies `env` overrides and validates.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|err| ConfigError::Read {
                    path: path.to_owned(),
                    reason: err.to_string(),
                })?;
                toml::from_str::<toml::Table>(&text).map_err(|err| ConfigError::Syntax {
                    path: path.to_owned(),
                    reason: err.to_string(),
                })?
            }
            None => toml::Table::new(),
        };
        let from_env = apply_env(&mut table, env)?;
        let config: Config =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|err| {
                let key = err.path().to_string();
                ConfigError::Key {
                    origin: origin(&from_env, &key),
                    reason: err.into_inner().message().trim().to_string(),
                    key,
                }
            })?;
        config
            .validate()
            .map_err(|(key, reason)| ConfigError::Key {
                origin: origin(&from_env, key),
                key: key.to_string(),
                reason,
            })?;
        Ok(config)
    }

    /// Checks ranges and combinations (`load` does; so does `Server::start`,
    /// for configurations built in code); returns the bad key and why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let limits = &self.limits;
        self.store.validate()?;
        self.webhooks.validate()?;
        self.voice.validate()?;
        self.cluster.validate()?;
        self.channel_registry()
            .map_err(|err| ("channels", err.to_string()))?;
        cors::validate_cors_origins(&self.server.cors_allow_origins)
            .map_err(|reason| ("server.cors_allow_origins", reason))?;
        if !self.auth.secret.is_empty() && self.auth.secret.len() < 32 {
            return Err(("auth.secret", "must be at least 32 characters".into()));
        }
        let positive = [
            ("auth.token_ttl_secs", self.auth.token_ttl_secs),
            ("auth.visitor_ttl_secs", self.auth.visitor_ttl_secs),
            ("limits.max_frame_bytes", limits.max_frame_bytes as u64),
            ("limits.max_body_chars", limits.max_body_chars as u64),
            (
                "limits.messages_per_second",
                limits.messages_per_second.into(),
            ),
            ("limits.message_burst", limits.message_burst.into()),
            ("limits.outbound_backlog", limits.outbound_backlog as u64),
            ("limits.write_timeout_ms", limits.write_timeout_ms),
            ("limits.ping_interval_ms", limits.ping_interval_ms),
            ("limits.idle_timeout_ms", limits.idle_timeout_ms),
            (
                "limits.max_http_body_bytes",
                limits.max_http_body_bytes as u64,
            ),
            (
                "limits.http_header_timeout_ms",
                limits.http_header_timeout_ms,
            ),
            ("limits.request_timeout_ms", limits.request_timeout_ms),
            ("routing.offer_timeout_ms", self.routing.offer_timeout_ms),
            (
                "routing.passivate_after_ms",
                self.routing.passivate_after_ms,
            ),
            (
                "routing.passivate_waiting_after_ms",
                self.routing.passivate_waiting_after_ms,
            ),
            ("routing.queue_update_ms", self.routing.queue_update_ms),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err((key, "must be greater than 0".into()));
            }
        }
        if limits.idle_timeout_ms <= limits.ping_interval_ms {
            return Err((
                "limits.idle_timeout_ms",
                format!(
                    "must be longer than limits.ping_interval_ms ({})",
                    limits.ping_interval_ms
                ),
            ));
        }
        if limits.max_frame_bytes < limits.min_frame_bytes() {
            return Err((
                "limits.max_frame_bytes",
                format!(
                    "must be at least {} so that a body of limits.max_body_chars ({}) characters \
                     fits however it is escaped ({} bytes a character, plus {} for the rest of the frame)",
                    limits.min_frame_bytes(),
                    limits.max_body_chars,
                    LimitsConfig::MAX_ESCAPED_CHAR_BYTES,
                    LimitsConfig::FRAME_ENVELOPE_BYTES,
                ),
            ));
        }
        if limits.max_ws_message_bytes < limits.max_frame_bytes {
            return Err((
                "limits.max_ws_message_bytes",
                format!(
                    "must be at least limits.max_frame_bytes ({})",
                    limits.max_frame_bytes
                ),
            ));
        }
        Ok(())
    }

    /// The connection cap in force: the configured one, or the open-file
    /// limit minus the reserve. Errors if the configured cap does not fit
    /// under the open-file limit.
    pub fn connection_cap(&self, open_file_limit: Option<u64>) -> Result<usize, ConfigError> {
        let limits = &self.limits;
        let usable = open_file_limit
            .map(|limit| (limit as usize).saturating_sub(limits.reserved_fds))
            .unwrap_or(usize::MAX);
        if limits.max_connections == 0 {
            if usable == 0 {
                return Err(ConfigError::Key {
                    key: "limits.reserved_fds".into(),
                    origin: String::new(),
                    reason: format!(
                        "{} leaves no room for connections under the open-file limit ({}); lower it or raise the limit",
                        limits.reserved_fds,
                        open_file_limit.unwrap_or_default()
                    ),
                });
            }
            return Ok(usable.min(100_000));
        }
        if limits.max_connections > usable {
            return Err(ConfigError::Key {
                key: "limits.max_connections".into(),
                origin: String::new(),
                reason: format!(
                    "{} does not fit under the open-file limit ({}) minus limits.reserved_fds ({}): at most {usable}",
                    limits.max_connections,
                    open_file_limit.unwrap_or_default(),
                    limits.reserved_fds
                ),
            });
        }
        Ok(limits.max_connections)
    }

    /// One adapter per `[[channels]]` entry; errors name the entry and its key.
    pub fn channel_registry(&self) -> Result<channels::Registry, channels::ChannelConfigError> {
        channels::Registry::build(
            &self.channels,
            channels::InboundLimits {
                max_text_chars: self.limits.max_body_chars,
            },
        )
    }

    /// The engine's knobs derived from this configuration.
    pub fn runtime(&self) -> actors::RuntimeConfig {
        actors::RuntimeConfig {
            offer_timeout: Duration::from_millis(self.routing.offer_timeout_ms),
            wrap_up: Duration::from_millis(self.routing.wrap_up_ms),
            passivate_after: Duration::from_millis(self.routing.passivate_after_ms),
            passivate_waiting_after: Duration::from_millis(self.routing.passivate_waiting_after_ms),
            queue_update: Duration::from_millis(self.routing.queue_update_ms),
            subscriber_buffer: self.limits.outbound_backlog,
            node_id: self.cluster.node_id,
            ..actors::RuntimeConfig::default()
        }
    }
}

/// The soft open-file limit of this process, from `/proc/self/limits`.
pub fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Moves `SWITCHBOARD_<SECTION>_<KEY>` variables into `table`; returns which
/// dotted keys came from which variable.
fn apply_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let known = toml::Table::try_from(Config::default()).expect("config serializes");
    let mut from_env = BTreeMap::new();
    for (name, value) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let rest = rest.to_ascii_lowercase();
        let found = known.iter().find_map(|(section, keys)| {
            let key = rest.strip_prefix(section.as_str())?.strip_prefix('_')?;
            keys.as_table()?.contains_key(key).then_some((section, key))
        });
        let Some((section, key)) = found else {
            return Err(ConfigError::Key {
                key: rest.replacen('_', ".", 1),
                origin: format!(" (from {name})"),
                reason: "unknown key".into(),
            });
        };
        let parsed = parse_env_value(&value, &known[section][key]);
        let section_table = table
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let Some(section_table) = section_table.as_table_mut() else {
            return Err(ConfigError::Key {
                key: section.clone(),
                origin: String::new(),
                reason: "must be a table".into(),
            });
        };
        section_table.insert(key.to_string(), parsed);
        from_env.insert(format!("{section}.{key}"), name);
    }
    Ok(from_env)
}

/// An environment value typed like the default it replaces, so that
/// `SWITCHBOARD_SERVER_LISTEN=127.0.0.1:9000` stays a string and
/// `SWITCHBOARD_LIMITS_MAX_CONNECTIONS=500` becomes a number; a value that
/// does not parse stays a string and the type error names the key.
fn parse_env_value(value: &str, default: &toml::Value) -> toml::Value {
    if default.is_str() {
        return toml::Value::String(value.to_string());
    }
    // A list may be given bare: `a:9042,b:9042`.
    if default.is_array() && !value.trim_start().starts_with('[') {
        return toml::Value::Array(
            value
                .split(',')
                .map(|item| toml::Value::String(item.trim().to_string()))
                .collect(),
        );
    }
    toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut table| table.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()))
}

fn origin(from_env: &BTreeMap<String, String>, key: &str) -> String {
    from_env
        .get(key)
        .map(|name| format!(" (from {name})"))
        .unwrap_or_default()
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests {
    use super::*;

    fn load(file: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("switchboard.toml");
        std::fs::write(&path, file).unwrap();
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Config::load(Some(&path), env)
    }

    fn check_error(file: &str, env: &[(&str, &str)], expected: &str) {
        let err = load(file, env).expect_err("config should be refused");
        assert_eq!(err.to_string(), expected);
    }

    #[test]
    fn defaults_file_and_env_combine() {
        let config = load(
            "[limits]\nmax_connections = 500\n[server]\nlisten = \"127.0.0.1:9000\"\n",
            &[
                ("SWITCHBOARD_LIMITS_MESSAGES_PER_SECOND", "7"),
                ("SWITCHBOARD_SERVER_LISTEN", "127.0.0.1:9100"),
                ("SWITCHBOARD_DEMO_ENABLED", "false"),
                ("SWITCHBOARD_LOG_FORMAT", "json"),
                ("OTHER_VARIABLE", "ignored"),
            ],
        )
        .unwrap();
        assert_eq!(config.log.format, LogFormat::Json);
        assert_eq!(config.limits.max_connections, 500);
        assert_eq!(config.limits.messages_per_second, 7);
        assert_eq!(config.server.listen.port(), 9100);
        assert!(!config.demo.enabled);
        assert_eq!(config.routing, RoutingConfig::default());
    }

    #[test]
    fn bad_keys_are_named() {
        check_error(
            "[limits]\nmax_connections = \"many\"\n",
            &[],
            "config key `limits.max_connections`: invalid type: string \"many\", expected usize",
        );
        check_error(
            "[limits]\nmax_conections = 5\n",
            &[],
            "config key `limits.max_conections`: unknown field `max_conections`, expected one of `max_connections`, `reserved_fds`, `max_frame_bytes`, `max_ws_message_bytes`, `max_body_chars`, `messages_per_second`, `message_burst`, `flood_close_after`, `outbound_backlog`, `write_timeout_ms`, `ping_interval_ms`, `idle_timeout_ms`, `new_sessions_per_customer_per_hour`, `max_http_body_bytes`, `new_visitors_per_second`, `new_visitor_burst`, `max_connections_per_address`, `http_header_timeout_ms`, `request_timeout_ms`",
        );
        check_error(
            "",
            &[("SWITCHBOARD_LIMITS_OUTBOUND_BACKLOG", "lots")],
            "config key `limits.outbound_backlog` (from SWITCHBOARD_LIMITS_OUTBOUND_BACKLOG): invalid type: string \"lots\", expected usize",
        );
        check_error(
            "",
            &[("SWITCHBOARD_LIMITS_NOPE", "1")],
            "config key `limits.nope` (from SWITCHBOARD_LIMITS_NOPE): unknown key",
        );
        check_error(
            "[server]\nlisten = \"localhost\"\n",
            &[],
            "config key `server.listen`: invalid socket address syntax",
        );
        check_error(
            "[routing]\noffer_timeout_ms = 0\n",
            &[],
            "config key `routing.offer_timeout_ms`: must be greater than 0",
        );
        check_error(
            "[auth]\nsecret = \"short\"\n",
            &[],
            "config key `auth.secret`: must be at least 32 characters",
        );
        check_error(
            "[limits]\nmax_frame_bytes = 16384\n",
            &[],
            "config key `limits.max_frame_bytes`: must be at least 52096 so that a body of limits.max_body_chars (4000) characters fits however it is escaped (12 bytes a character, plus 4096 for the rest of the frame)",
        );
        check_error(
            "",
            &[("SWITCHBOARD_LOG_FORMAT", "xml")],
            "config key `log.format` (from SWITCHBOARD_LOG_FORMAT): unknown variant `xml`, expected `text` or `json`",
        );
        check_error(
            "[store]\nbackend = \"postgres\"\n",
            &[],
            "config key `store.backend`: unknown backend `postgres`; one of sqlite, scylla",
        );
    }

    #[test]
    fn the_example_file_holds_every_key_with_its_default() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../switchboard.example.toml");
        let config = Config::load(Some(&path), Vec::new()).unwrap();
        assert_eq!(config, Config::default());
        let text = std::fs::read_to_string(&path).unwrap();
        let example: toml::Table = toml::from_str(&text).unwrap();
        let defaults = toml::Table::try_from(Config::default()).unwrap();
        assert_eq!(example, defaults, "every key is in the example");
    }

    #[test]
    fn channel_accounts_are_checked_naming_the_entry() {
        let entry = |name: &str, kind: &str| {
            format!(
                "[[channels]]\nkind = \"{kind}\"\nname = \"{name}\"\nchannel = \"sms\"\nsecret = \"0123456789abcdef\"\n"
            )
        };
        let config = load(
            &format!("{}{}", entry("sms-a", "webhook"), entry("sms-b", "webhook")),
            &[],
        )
        .unwrap();
        let names: Vec<String> = config
            .channel_registry()
            .unwrap()
            .accounts()
            .map(|account| account.name.clone())
            .collect();
        assert_eq!(names, ["sms-a", "sms-b"]);
        check_error(
            &format!("{}{}", entry("sms", "webhook"), entry("sms", "webhook")),
            &[],
            "config key `channels`: channels[1] (`sms`).name: is used twice: every account needs its own name",
        );
        check_error(
            &entry("sms", "fax"),
            &[],
            "config key `channels`: channels[0] (`sms`).kind: unknown kind `fax`; one of webhook, wechat, qq, bridge",
        );
        check_error(
            "[[channels]]\nkind = \"webhook\"\nname = \"sms\"\n",
            &[],
            "config key `channels[0]`: missing field `channel`",
        );
    }

    #[test]
    fn syntax_errors_give_the_file_and_line() {
        let err = load("[limits\n", &[]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("is not valid TOML"), "{text}");
        assert!(text.contains("line 1"), "{text}");
    }

    #[test]
    fn the_connection_cap_fits_under_the_open_file_limit() {
        let mut config = Config::default();
        assert_eq!(config.connection_cap(Some(20_000)).unwrap(), 18_976);
        assert_eq!(config.connection_cap(None).unwrap(), 100_000);
        config.limits.max_connections = 19_500;
        let err = config.connection_cap(Some(20_000)).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("config key `limits.max_connections`")
        );
        config.limits.max_connections = 500;
        assert_eq!(config.connection_cap(Some(20_000)).unwrap(), 500);
        config.limits.max_connections = 0;
        let err = config.connection_cap(Some(1_000)).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("config key `limits.reserved_fds`"),
            "{err}"
        );
    }
}
