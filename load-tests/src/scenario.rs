//! Scenarios by name, and their parameters: the scenario's defaults, then a
//! TOML file, then `--set key=value` on the command line, each overriding the
//! one before. Unknown keys and bad values are errors that name the key.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// What the generator does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// N customers and M agents exchanging messages at a target rate.
    SteadyChat,
    /// Poisson arrivals, exponential handle times, wrap-up, abandonment.
    ContactCenterDay,
    /// The contact-center day with arrivals ×`spike_factor` for a while.
    PromotionSpike,
    /// Many customers connect at once (and open a session each).
    ConnectionStorm,
    /// Connected customers all drop and come back with `last_seq`.
    ResumeStorm,
    /// Many open sessions that say nothing, through `POST /api/v1/inbound`.
    IdleSessions,
    /// Steady chat for a long time, memory sampled throughout.
    Soak,
    /// Phone calls from a trunk at a rate: SIP setup time.
    CallSetup,
    /// Phone calls answered by agents' phones, RTP both ways through the relay.
    VoiceRelay,
    /// A platform posting signed messages to a webhook channel account;
    /// agents' replies back through the outbox.
    ChannelWebhook,
}

impl Kind {
    /// Every scenario, in the order `loadgen list` shows them.
    pub const ALL: [Kind; 10] = [
        Kind::SteadyChat,
        Kind::ContactCenterDay,
        Kind::PromotionSpike,
        Kind::ConnectionStorm,
        Kind::ResumeStorm,
        Kind::IdleSessions,
        Kind::Soak,
        Kind::CallSetup,
        Kind::VoiceRelay,
        Kind::ChannelWebhook,
    ];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Kind::SteadyChat => "steady-chat",
            Kind::ContactCenterDay => "contact-center-day",
            Kind::PromotionSpike => "promotion-spike",
            Kind::ConnectionStorm => "connection-storm",
            Kind::ResumeStorm => "resume-storm",
            Kind::IdleSessions => "idle-sessions",
            Kind::Soak => "soak",
            Kind::CallSetup => "call-setup",
            Kind::VoiceRelay => "voice-relay",
            Kind::ChannelWebhook => "channel-webhook",
        }
    }

    /// One line for `loadgen list`.
    pub fn about(self) -> &'static str {
        match self {
            Kind::SteadyChat => {
                "`customers` customers and `agents` agents; every customer is answered, then they exchange `rate` messages/s in total for `duration_secs` (agents reply to each)"
            }
            Kind::ContactCenterDay => {
                "customers arrive at `arrivals_per_sec` (Poisson), talk for `handle_secs` (exponential), abandon after `patience_secs` (exponential) if nobody answers; agents accept, wrap up for `wrap_up_secs`"
            }
            Kind::PromotionSpike => {
                "the contact-center day with arrivals x`spike_factor` from `spike_at_secs` for `spike_secs`"
            }
            Kind::ConnectionStorm => {
                "`customers` customers connect as fast as the server takes them, each opens a session (`open_session`), all hold for `hold_secs`: memory per connected session (waiting; with `agents` > 0 each is answered first: assigned)"
            }
            Kind::ResumeStorm => {
                "`customers` answered customers each send one message and drop at once, `rounds` times; they reconnect with `last_seq` and resend; nothing may be lost or seen twice"
            }
            Kind::IdleSessions => {
                "`sessions` sessions opened through POST /api/v1/inbound on `channel`, nobody answers: memory per idle session"
            }
            Kind::Soak => {
                "steady chat for `duration_secs` (default 30 min), memory sampled every second"
            }
            Kind::CallSetup => {
                "SIP callers on a loopback trunk place `rate` calls/s (default 200) for `duration_secs` (30), each hangs up after `hold_secs` (2): setup time INVITE → 200 OK, answered / failed by status; `agents` (default 0) agents' phones answer what they are offered"
            }
            Kind::VoiceRelay => {
                "`calls` calls (default 1000, placed at `rate`/s) each answered by one of `agents` (default = `calls`) agents' phones, then G.711 RTP both ways at 50 packets/s for `media_secs` (20) over `rtp_sockets` sockets per side: one-way latency, jitter and loss per direction, the server's CPU and relay metrics"
            }
            Kind::ChannelWebhook => {
                "a platform posts `rate` signed messages/s (default 5000; `batch` per request, `concurrency` requests in flight) from `customers` senders to a webhook channel account for `duration_secs`: messages/s and time to the durable ack; with `agents` > 0 agents answer every message and their replies come back to the platform through the outbox (deliveries/s, agent send → platform)"
            }
        }
    }

    /// Whether the bare relay can stand in for switchboard under it.
    pub fn has_baseline(self) -> bool {
        !matches!(self, Kind::IdleSessions | Kind::ChannelWebhook) && !self.is_phone()
    }

    /// Whether the scenario posts to a message channel (the server needs
    /// a `[[channels]]` account).
    pub fn is_channel(self) -> bool {
        self == Kind::ChannelWebhook
    }

    /// Whether the scenario calls over SIP (the server needs `[voice]`).
    pub fn is_phone(self) -> bool {
        matches!(self, Kind::CallSetup | Kind::VoiceRelay)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Kind {
    type Err = anyhow::Error;

    fn from_str(name: &str) -> Result<Kind> {
        Kind::ALL
            .into_iter()
            .find(|kind| kind.name() == name)
            .with_context(|| {
                let names: Vec<_> = Kind::ALL.iter().map(|kind| kind.name()).collect();
                format!("unknown scenario `{name}`; one of: {}", names.join(", "))
            })
    }
}

/// A scenario's parameters. Every key can be set in a file or with `--set`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// Customers connected at once (steady chat, storms).
    pub customers: u32,
    /// Agents online.
    pub agents: u32,
    /// Chats one agent holds at once.
    pub agent_capacity: u32,
    /// How long the measured phase lasts.
    pub duration_secs: f64,
    /// Customer messages per second, all customers together (steady chat, soak).
    pub rate: f64,
    /// Arrivals per second (contact-center day).
    pub arrivals_per_sec: f64,
    /// Mean conversation length once answered.
    pub handle_secs: f64,
    /// Mean time a waiting customer stays before leaving.
    pub patience_secs: f64,
    /// Seconds between a customer's messages in a conversation (day).
    pub talk_interval_secs: f64,
    /// An agent's wrap-up after closing, before taking work again.
    pub wrap_up_secs: f64,
    /// Answered within this counts for the service level.
    pub sl_threshold_secs: f64,
    /// When the spike starts, from the start of the measured phase.
    pub spike_at_secs: f64,
    /// How long the spike lasts.
    pub spike_secs: f64,
    /// Arrivals during the spike, as a multiple of `arrivals_per_sec`.
    pub spike_factor: f64,
    /// Storm: each customer opens a session with one message.
    pub open_session: bool,
    /// Storm: how long everyone stays connected before the memory reading;
    /// idle sessions: how long to wait after the last one before it.
    pub hold_secs: f64,
    /// Resume storm: how many drop-and-return rounds.
    pub rounds: u32,
    /// Idle sessions: how many.
    pub sessions: u64,
    /// Idle sessions: the channel the envelopes come from.
    pub channel: String,
    /// Idle sessions: requests in flight at once, per process.
    pub concurrency: u32,
    /// Connections opened at once, per process, while connecting.
    pub connect_concurrency: u32,
    /// After the measured phase, how long to wait for messages in flight.
    pub drain_secs: f64,
    /// Generator processes (more are used when connections need them).
    pub processes: u32,
    /// Source addresses 127.0.0.1 … 127.0.0.N the connections are spread over.
    pub sources: u32,
    /// Connections one generator process holds at most (open-file limit).
    pub connections_per_process: u32,
    /// Seed of the random arrivals, handle times and patience.
    pub seed: u64,
    /// Voice relay: calls at once.
    pub calls: u32,
    /// Voice relay: how long RTP flows both ways once every call is bridged.
    pub media_secs: f64,
    /// Voice relay: UDP sockets per side (callers, agents' phones) the
    /// calls' RTP legs are spread over.
    pub rtp_sockets: u32,
    /// Channel webhook: messages per request (1 = one message per request).
    #[serde(default = "one")]
    pub batch: u32,
    /// Switchboard nodes the run starts as one cluster over one SQLite
    /// file (docs/cluster.md); each generator process connects to one of
    /// them in turn, so customers and agents are spread evenly.
    #[serde(default = "one")]
    pub nodes: u32,
    /// Steady chat over a cluster: this many seconds after `go`, the last
    /// node is killed (SIGKILL); its customers and agents reconnect to
    /// the others and resume, and every delivery check still holds. 0: no kill.
    #[serde(default)]
    pub kill_node_at_secs: f64,
}

/// The most nodes one run starts (each is a server process on this host).
pub const MAX_NODES: u32 = 16;

/// The default of [`Params::batch`] and [`Params::nodes`].
fn one() -> u32 {
    1
}

impl Default for Params {
    fn default() -> Params {
        Params {
            customers: 100,
            agents: 10,
            agent_capacity: 10,
            duration_secs: 10.0,
            rate: 200.0,
            arrivals_per_sec: 5.0,
            handle_secs: 8.0,
            patience_secs: 20.0,
            talk_interval_secs: 2.0,
            wrap_up_secs: 1.0,
            sl_threshold_secs: 20.0,
            spike_at_secs: 10.0,
            spike_secs: 10.0,
            spike_factor: 10.0,
            open_session: true,
            hold_secs: 5.0,
            rounds: 2,
            sessions: 10_000,
            channel: "wechat".into(),
            concurrency: 32,
            connect_concurrency: 200,
            drain_secs: 10.0,
            processes: 2,
            sources: 4,
            connections_per_process: 15_000,
            seed: 1,
            calls: 1_000,
            media_secs: 20.0,
            rtp_sockets: 16,
            batch: 1,
            nodes: 1,
            kill_node_at_secs: 0.0,
        }
    }
}

impl Params {
    /// The defaults of `kind`.
    pub fn defaults(kind: Kind) -> Params {
        let base = Params::default();
        match kind {
            Kind::ContactCenterDay => Params {
                duration_secs: 60.0,
                agents: 20,
                agent_capacity: 2,
                ..base
            },
            Kind::PromotionSpike => Params {
                duration_secs: 40.0,
                agents: 20,
                agent_capacity: 2,
                arrivals_per_sec: 2.0,
                ..base
            },
            Kind::ConnectionStorm => Params {
                customers: 1_000,
                agents: 0,
                ..base
            },
            Kind::ResumeStorm => Params {
                customers: 1_000,
                agents: 20,
                agent_capacity: 50,
                ..base
            },
            Kind::Soak => Params {
                duration_secs: 1_800.0,
                ..base
            },
            // Nobody answers idle sessions.
            Kind::IdleSessions => Params { agents: 0, ..base },
            Kind::SteadyChat => base,
            Kind::CallSetup => Params {
                rate: 200.0,
                duration_secs: 30.0,
                hold_secs: 2.0,
                agents: 0,
                ..base
            },
            // `agents` follows `calls` unless set (see `load`).
            Kind::VoiceRelay => Params {
                rate: 200.0,
                agents: base.calls,
                ..base
            },
            // Inbound throughput alone unless agents are asked for.
            Kind::ChannelWebhook => Params {
                rate: 5_000.0,
                duration_secs: 20.0,
                customers: 2_000,
                agents: 0,
                agent_capacity: 50,
                concurrency: 64,
                ..base
            },
        }
    }

    /// `kind`'s defaults, then `file` (TOML, keys as here), then `sets`
    /// (`key=value`, the value in TOML syntax or a bare string).
    pub fn load(kind: Kind, file: Option<&Path>, sets: &[String]) -> Result<Params> {
        let mut table =
            toml::Table::try_from(Params::defaults(kind)).context("defaults serialize")?;
        let mut agents_given = false;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("failed to read {}", path.display()))?;
            let from_file: toml::Table = text
                .parse()
                .with_context(|| format!("{} is not valid TOML", path.display()))?;
            for (key, value) in from_file {
                if key == "scenario" {
                    continue;
                }
                agents_given |= key == "agents";
                set_param(&mut table, &key, value).with_context(|| path.display().to_string())?;
            }
        }
        for set in sets {
            let (key, raw) = set
                .split_once('=')
                .with_context(|| format!("--set `{set}`: expected key=value"))?;
            set_param(&mut table, key.trim(), parse_value(raw.trim()))
                .with_context(|| format!("--set {set}"))?;
            agents_given |= key.trim() == "agents";
        }
        if kind == Kind::VoiceRelay
            && !agents_given
            && let Some(calls) = table.get("calls").cloned()
        {
            // One agent (and phone) per call unless said otherwise.
            table.insert("agents".into(), calls);
        }
        let params: Params =
            toml::Value::Table(table)
                .try_into()
                .map_err(|err: toml::de::Error| {
                    anyhow::anyhow!("scenario parameters: {}", err.message())
                })?;
        params.validate()?;
        if params.kill_node_at_secs > 0.0 && !matches!(kind, Kind::SteadyChat | Kind::Soak) {
            bail!("`kill_node_at_secs` is for steady-chat and soak, not {kind}");
        }
        Ok(params)
    }

    /// The scenario named in a file's `scenario = "…"` key, if any.
    pub fn kind_in_file(path: &Path) -> Result<Option<Kind>> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read {}", path.display()))?;
        let table: toml::Table = text
            .parse()
            .with_context(|| format!("{} is not valid TOML", path.display()))?;
        match table.get("scenario") {
            None => Ok(None),
            Some(toml::Value::String(name)) => Ok(Some(name.parse()?)),
            Some(other) => bail!(
                "{}: `scenario` must be a string, not {other}",
                path.display()
            ),
        }
    }

    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("duration_secs", self.duration_secs),
            ("rate", self.rate),
            ("arrivals_per_sec", self.arrivals_per_sec),
            ("handle_secs", self.handle_secs),
            ("patience_secs", self.patience_secs),
            ("talk_interval_secs", self.talk_interval_secs),
            ("spike_factor", self.spike_factor),
        ];
        for (key, value) in positive {
            if !(value.is_finite() && value > 0.0) {
                bail!("`{key}` must be a number above 0, not {value}");
            }
        }
        let non_negative = [
            ("wrap_up_secs", self.wrap_up_secs),
            ("sl_threshold_secs", self.sl_threshold_secs),
            ("spike_at_secs", self.spike_at_secs),
            ("spike_secs", self.spike_secs),
            ("hold_secs", self.hold_secs),
            ("drain_secs", self.drain_secs),
            ("media_secs", self.media_secs),
            ("kill_node_at_secs", self.kill_node_at_secs),
        ];
        for (key, value) in non_negative {
            if !(value.is_finite() && value >= 0.0) {
                bail!("`{key}` must be a number of at least 0, not {value}");
            }
        }
        let at_least_one = [
            ("agent_capacity", self.agent_capacity),
            ("concurrency", self.concurrency),
            ("connect_concurrency", self.connect_concurrency),
            ("processes", self.processes),
            ("sources", self.sources),
            ("connections_per_process", self.connections_per_process),
            ("calls", self.calls),
            ("rtp_sockets", self.rtp_sockets),
            ("nodes", self.nodes),
        ];
        for (key, value) in at_least_one {
            if value == 0 {
                bail!("`{key}` must be at least 1");
            }
        }
        if self.sources > 254 {
            bail!("`sources` must be at most 254 (127.0.0.1 … 127.0.0.254)");
        }
        if self.connections_per_process > 19_000 {
            bail!(
                "`connections_per_process` must be at most 19000: one process may hold 20,000 open files here"
            );
        }
        if self.nodes > MAX_NODES {
            bail!("`nodes` must be at most {MAX_NODES}");
        }
        if self.kill_node_at_secs > 0.0 {
            if self.nodes < 2 {
                bail!(
                    "`kill_node_at_secs` needs `nodes` of at least 2: someone must survive the kill"
                );
            }
            if self.kill_node_at_secs >= self.duration_secs {
                bail!(
                    "`kill_node_at_secs` ({}) must come before the end of `duration_secs` ({})",
                    self.kill_node_at_secs,
                    self.duration_secs
                );
            }
        }
        if self.channel.is_empty() {
            bail!("`channel` must not be empty");
        }
        Ok(())
    }
}

/// Sets `key` to `value`, checking the key exists and the value has the
/// default's type (an integer is fine where a number is expected).
fn set_param(table: &mut toml::Table, key: &str, value: toml::Value) -> Result<()> {
    let Some(default) = table.get(key) else {
        let mut keys: Vec<&str> = table.keys().map(String::as_str).collect();
        keys.sort_unstable();
        bail!("unknown parameter `{key}`; known: {}", keys.join(", "));
    };
    let value = match (default, value) {
        (toml::Value::Float(_), toml::Value::Integer(n)) => toml::Value::Float(n as f64),
        (default, value) if default.same_type(&value) => value,
        (default, value) => bail!("`{key}` must be {}, not {value}", default.type_str()),
    };
    table.insert(key.to_string(), value);
    Ok(())
}

/// A `--set` value: TOML syntax (`10`, `2.5`, `true`, `"x"`), else a bare string.
fn parse_value(raw: &str) -> toml::Value {
    format!("value = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut table| table.remove("value"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(kind: Kind, file: Option<&str>, sets: &[&str], expected: Result<Params, &str>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scenario.toml");
        if let Some(text) = file {
            std::fs::write(&path, text).unwrap();
        }
        let sets: Vec<String> = sets.iter().map(|set| set.to_string()).collect();
        let got = Params::load(kind, file.map(|_| path.as_path()), &sets);
        match (got, expected) {
            (Ok(got), Ok(expected)) => assert_eq!(got, expected),
            (Err(err), Err(needle)) => {
                let text = format!("{err:#}");
                assert!(text.contains(needle), "`{text}` should contain `{needle}`");
            }
            (got, expected) => panic!("got {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn defaults_then_file_then_sets() {
        let day = Params::defaults(Kind::ContactCenterDay);
        check(Kind::ContactCenterDay, None, &[], Ok(day.clone()));
        check(
            Kind::ContactCenterDay,
            Some("scenario = \"contact-center-day\"\nagents = 7\nrate = 50.0\n"),
            &["agents=9", "channel=sms", "open_session=false"],
            Ok(Params {
                agents: 9,
                rate: 50.0,
                channel: "sms".into(),
                open_session: false,
                ..day
            }),
        );
    }

    #[test]
    fn bad_keys_and_values_are_named() {
        check(
            Kind::SteadyChat,
            None,
            &["custmers=5"],
            Err("unknown parameter `custmers`"),
        );
        check(
            Kind::SteadyChat,
            None,
            &["rate=0"],
            Err("`rate` must be a number above 0"),
        );
        check(
            Kind::SteadyChat,
            None,
            &["agents=many"],
            Err("`agents` must be integer, not \"many\""),
        );
        check(
            Kind::SteadyChat,
            Some("rate = true"),
            &[],
            Err("`rate` must be float"),
        );
        check(
            Kind::SteadyChat,
            None,
            &["sources=300"],
            Err("`sources` must be at most 254"),
        );
        check(Kind::SteadyChat, None, &["rate"], Err("expected key=value"));
        check(
            Kind::SteadyChat,
            None,
            &["kill_node_at_secs=5"],
            Err("`kill_node_at_secs` needs `nodes` of at least 2"),
        );
        check(
            Kind::SteadyChat,
            None,
            &["nodes=3", "kill_node_at_secs=10"],
            Err("must come before the end of `duration_secs`"),
        );
        check(
            Kind::ContactCenterDay,
            None,
            &["nodes=3", "kill_node_at_secs=5"],
            Err("is for steady-chat and soak, not contact-center-day"),
        );
        check(
            Kind::SteadyChat,
            None,
            &["nodes=3", "kill_node_at_secs=5"],
            Ok(Params {
                nodes: 3,
                kill_node_at_secs: 5.0,
                ..Params::default()
            }),
        );
        check(
            Kind::SteadyChat,
            Some("rate = ["),
            &[],
            Err("not valid TOML"),
        );
    }

    #[test]
    fn voice_relay_has_one_agent_per_call_unless_told() {
        let relay = Params::defaults(Kind::VoiceRelay);
        check(
            Kind::VoiceRelay,
            None,
            &["calls=5"],
            Ok(Params {
                calls: 5,
                agents: 5,
                ..relay.clone()
            }),
        );
        check(
            Kind::VoiceRelay,
            None,
            &["calls=5", "agents=8"],
            Ok(Params {
                calls: 5,
                agents: 8,
                ..relay
            }),
        );
        check(
            Kind::CallSetup,
            None,
            &["calls=0"],
            Err("`calls` must be at least 1"),
        );
    }

    #[test]
    fn scenarios_parse_by_name() {
        for kind in Kind::ALL {
            assert_eq!(kind.name().parse::<Kind>().unwrap(), kind);
        }
        let err = "steady".parse::<Kind>().unwrap_err().to_string();
        assert!(err.contains("steady-chat"), "{err}");
    }
}
