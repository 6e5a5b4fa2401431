//! `[voice]`: where the SIP endpoint listens, how phones authenticate, which
//! trunks may send calls, and the limits that protect the process.
//!
//! The gateway embeds [`VoiceConfig`] as its `voice` section, so every key
//! can also be set from the environment (`SWITCHBOARD_VOICE_LISTEN=…`);
//! `[[voice.trunks]]` is a list of tables and comes from the file only.

use std::net::{IpAddr, SocketAddr};

use engine::secret::Secret;
use serde::{Deserialize, Serialize};

use super::digest::DigestAlgorithm;
use super::trunk::AddressRange;
use crate::webrtc::ice_servers::{IceServerConfig, IceTransportPolicy};

/// The phone channel's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VoiceConfig {
    /// Off by default: a server that takes no calls opens no SIP port.
    pub enabled: bool,
    /// UDP and TCP listen on this one address; port 0 picks a free port (tests).
    pub listen: SocketAddr,
    /// The IP peers reach us at, written into Contact, Via and SDP; empty
    /// means the listen address's IP, which must then not be `0.0.0.0`.
    pub public_address: String,
    /// First UDP port for RTP (even ports carry RTP; RTCP is not used).
    pub rtp_port_min: u16,
    /// Last UDP port for RTP; the range bounds the concurrent calls media can carry.
    pub rtp_port_max: u16,
    /// The digest realm phones authenticate in. Agents' stored HA1 hashes
    /// are bound to it: change it and every SIP password must be set again.
    pub realm: String,
    /// One challenge per algorithm, in this order. MD5 comes first because
    /// Debian's sipp 3.6.1 and baresip 1.0 answer only the first challenge
    /// and know only MD5.
    pub digest_algorithms: Vec<DigestAlgorithm>,
    /// Shorter registrations get 423 Interval Too Brief with this Min-Expires.
    pub registration_min_expires_secs: u32,
    /// Used when a REGISTER names no expiry.
    pub registration_default_expires_secs: u32,
    /// Longer registrations are granted this much instead.
    pub registration_max_expires_secs: u32,
    /// Calls at once (ringing or answered); one more gets 503.
    pub max_calls: usize,
    /// INVITEs per second one source IP may send, sustained; more get 503
    /// with Retry-After. A carrier sends every call from one address, so this
    /// must be above the busiest trunk's call rate.
    pub invite_rate_per_sec: u32,
    /// INVITEs one source IP may send at once after a quiet spell.
    pub invite_rate_burst: u32,
    /// Peers that may send calls (carriers, PBXs); none means no calls are taken.
    pub trunks: Vec<TrunkConfig>,
    /// Queue callers on early media: `183 Session Progress` with the SDP
    /// (hold audio flows) and `200 OK` only when an agent's phone answers,
    /// so a carrier bills from the answer. Off: the call is answered (200)
    /// when it is queued. The IVR menu answers the call either way.
    pub early_media: bool,
    /// A call whose caller sends no RTP for this long is taken as gone
    /// (its phone or network died without a BYE) and ended as dropped;
    /// 0 = never. Checked once per period, so it ends between one and two
    /// periods after the last packet; a caller that holds (sendonly,
    /// inactive) is not checked.
    pub rtp_timeout_secs: u64,
    /// The IVR menu callers key a choice in before they are queued.
    pub ivr: IvrConfig,
    /// STUN/TURN servers for agents' browsers (the browser softphone); none:
    /// browsers reach switchboard's host candidate directly.
    pub ice_servers: Vec<IceServerConfig>,
    /// `relay`: browsers send audio only through a TURN server of
    /// `ice_servers` (their own addresses never reach switchboard); `all`:
    /// any path.
    pub ice_transport_policy: IceTransportPolicy,
}

/// `[voice.ivr]`: an optional menu before the queue. The caller is answered
/// and hears the prompt (in a loop) until they key `max_digits` digits, the
/// terminator, or stop keying; the digits are `contact.digits` in routing
/// rules and go into the call's `started` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IvrConfig {
    /// Off by default: callers go straight to the queue.
    pub enabled: bool,
    /// The menu is over after this many digits.
    pub max_digits: usize,
    /// Ends the menu early (not part of the digits); `""` for none.
    pub terminator: String,
    /// How long the prompt plays before a caller who keys nothing is queued
    /// without digits.
    pub first_digit_timeout_ms: u64,
    /// How long after a digit the next may come.
    pub inter_digit_timeout_ms: u64,
}

impl Default for IvrConfig {
    fn default() -> Self {
        IvrConfig {
            enabled: false,
            max_digits: 1,
            terminator: "#".into(),
            first_digit_timeout_ms: 8_000,
            inter_digit_timeout_ms: 3_000,
        }
    }
}

impl Default for VoiceConfig {
    fn default() -> Self {
        VoiceConfig {
            enabled: false,
            listen: "127.0.0.1:5060".parse().expect("valid default address"),
            public_address: String::new(),
            rtp_port_min: 20_000,
            rtp_port_max: 29_999,
            realm: "switchboard".into(),
            digest_algorithms: vec![DigestAlgorithm::Md5, DigestAlgorithm::Sha256],
            registration_min_expires_secs: 60,
            registration_default_expires_secs: 3_600,
            registration_max_expires_secs: 7_200,
            max_calls: 2_000,
            invite_rate_per_sec: 400,
            invite_rate_burst: 800,
            trunks: Vec::new(),
            early_media: false,
            rtp_timeout_secs: 120,
            ivr: IvrConfig::default(),
            ice_servers: Vec::new(),
            ice_transport_policy: IceTransportPolicy::All,
        }
    }
}

/// A peer that may send INVITEs: by source address, by digest credentials,
/// or both (then both must hold).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkConfig {
    /// Short unique name, shown in logs and on the call.
    pub name: String,
    /// Source IPs (`203.0.113.7`) and networks (`203.0.113.0/24`, `2001:db8::/32`)
    /// the trunk sends from; empty: any address, with credentials.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Digest username the trunk answers a 401 with; empty: no digest.
    #[serde(default)]
    pub username: String,
    /// The trunk's digest password, kept in the file because the peer needs
    /// it in clear too. Shown as `<redacted>` by `check-config` and in logs.
    #[serde(default)]
    pub password: Secret,
}

impl TrunkConfig {
    /// A trunk named `name` from the sources `allow` (IPs and CIDRs), with
    /// digest credentials unless `username` is empty.
    pub fn new(name: &str, allow: &[&str], username: &str, password: &str) -> TrunkConfig {
        TrunkConfig {
            name: name.into(),
            allow: allow.iter().map(|s| s.to_string()).collect(),
            username: username.into(),
            password: password.into(),
        }
    }
}

impl std::fmt::Debug for TrunkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrunkConfig")
            .field("name", &self.name)
            .field("allow", &self.allow)
            .field("username", &self.username)
            .field("password", &self.password)
            .finish()
    }
}

type KeyError = (&'static str, String);

impl VoiceConfig {
    /// Checks ranges and combinations; returns the bad key and why.
    pub fn validate(&self) -> Result<(), KeyError> {
        self.public_ip()?;
        if self.rtp_port_min == 0 || self.rtp_port_min > self.rtp_port_max {
            return Err((
                "voice.rtp_port_min",
                format!(
                    "must be between 1 and voice.rtp_port_max ({})",
                    self.rtp_port_max
                ),
            ));
        }
        if self.realm.is_empty() || self.realm.contains(['"', '\\']) {
            return Err((
                "voice.realm",
                "must be non-empty, without quotes or backslashes".into(),
            ));
        }
        if self.digest_algorithms.is_empty() {
            return Err((
                "voice.digest_algorithms",
                "name at least one of MD5, SHA-256".into(),
            ));
        }
        let (min, default, max) = (
            self.registration_min_expires_secs,
            self.registration_default_expires_secs,
            self.registration_max_expires_secs,
        );
        if min == 0 {
            return Err((
                "voice.registration_min_expires_secs",
                "must be at least 1".into(),
            ));
        }
        if default < min || default > max {
            return Err((
                "voice.registration_default_expires_secs",
                format!("must be between the min ({min}) and the max ({max})"),
            ));
        }
        if self.max_calls == 0 {
            return Err(("voice.max_calls", "must be at least 1".into()));
        }
        if self.invite_rate_per_sec == 0 {
            return Err(("voice.invite_rate_per_sec", "must be at least 1".into()));
        }
        if self.invite_rate_burst == 0 {
            return Err(("voice.invite_rate_burst", "must be at least 1".into()));
        }
        if self.rtp_timeout_secs > 86_400 {
            return Err((
                "voice.rtp_timeout_secs",
                "must be at most 86400 (0 = never)".into(),
            ));
        }
        self.validate_ivr()?;
        crate::webrtc::ice_servers::validate(&self.ice_servers, self.ice_transport_policy)?;
        self.validate_trunks()
    }

    fn validate_ivr(&self) -> Result<(), KeyError> {
        let ivr = &self.ivr;
        if !(1..=32).contains(&ivr.max_digits) {
            return Err(("voice.ivr.max_digits", "must be between 1 and 32".into()));
        }
        let is_key = |key: char| matches!(key, '0'..='9' | '*' | '#' | 'A'..='D');
        if ivr.terminator.chars().count() > 1 || !ivr.terminator.chars().all(is_key) {
            return Err((
                "voice.ivr.terminator",
                "must be one key (0-9, *, #, A-D) or empty".into(),
            ));
        }
        for (key, value) in [
            (
                "voice.ivr.first_digit_timeout_ms",
                ivr.first_digit_timeout_ms,
            ),
            (
                "voice.ivr.inter_digit_timeout_ms",
                ivr.inter_digit_timeout_ms,
            ),
        ] {
            if !(100..=120_000).contains(&value) {
                return Err((key, "must be between 100 and 120000".into()));
            }
        }
        Ok(())
    }

    fn validate_trunks(&self) -> Result<(), KeyError> {
        let key = "voice.trunks";
        for (idx, trunk) in self.trunks.iter().enumerate() {
            if trunk.name.is_empty() {
                return Err((key, format!("trunk #{} has no name", idx + 1)));
            }
            if self.trunks[..idx].iter().any(|t| t.name == trunk.name) {
                return Err((key, format!("two trunks are named `{}`", trunk.name)));
            }
            for entry in &trunk.allow {
                entry.parse::<AddressRange>().map_err(|why| {
                    (
                        key,
                        format!("trunk `{}`: allow `{entry}`: {why}", trunk.name),
                    )
                })?;
            }
            if trunk.username.is_empty() != trunk.password.is_empty() {
                return Err((
                    key,
                    format!(
                        "trunk `{}`: set both username and password, or neither",
                        trunk.name
                    ),
                ));
            }
            if trunk.allow.is_empty() && trunk.username.is_empty() {
                return Err((
                    key,
                    format!(
                        "trunk `{}` needs an allow list, credentials or both",
                        trunk.name
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The address written into Contact, Via and SDP.
    pub fn public_ip(&self) -> Result<IpAddr, KeyError> {
        if self.public_address.is_empty() {
            if self.listen.ip().is_unspecified() {
                return Err((
                    "voice.public_address",
                    format!(
                        "must be set when voice.listen ({}) is a wildcard address",
                        self.listen
                    ),
                ));
            }
            return Ok(self.listen.ip());
        }
        self.public_address.parse().map_err(|_| {
            (
                "voice.public_address",
                format!("`{}` is not an IP address", self.public_address),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(edit: impl FnOnce(&mut VoiceConfig), expected: Result<(), (&str, &str)>) {
        let mut config = VoiceConfig::default();
        edit(&mut config);
        let result = config.validate();
        match (&result, expected) {
            (Ok(()), Ok(())) => {}
            (Err((key, reason)), Err((expected_key, expected_part))) => {
                assert_eq!(*key, expected_key, "{reason}");
                assert!(
                    reason.contains(expected_part),
                    "`{reason}` should contain `{expected_part}`"
                );
            }
            _ => panic!("{result:?} but expected {expected:?}"),
        }
    }

    fn trunk(name: &str, allow: &[&str], username: &str, password: &str) -> TrunkConfig {
        TrunkConfig::new(name, allow, username, password)
    }

    #[test]
    fn the_default_is_valid_and_listens_on_loopback_5060() {
        let config = VoiceConfig::default();
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.listen.to_string(), "127.0.0.1:5060");
        assert_eq!(config.public_ip(), Ok("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn bad_values_name_their_key() {
        check(
            |c| c.listen = "0.0.0.0:5060".parse().unwrap(),
            Err(("voice.public_address", "wildcard")),
        );
        check(
            |c| {
                c.listen = "0.0.0.0:5060".parse().unwrap();
                c.public_address = "198.51.100.4".into();
            },
            Ok(()),
        );
        check(
            |c| c.public_address = "example.com".into(),
            Err(("voice.public_address", "not an IP")),
        );
        check(
            |c| c.rtp_port_min = 30_000,
            Err(("voice.rtp_port_min", "between")),
        );
        check(|c| c.realm = "a\"b".into(), Err(("voice.realm", "quotes")));
        check(
            |c| c.digest_algorithms.clear(),
            Err(("voice.digest_algorithms", "at least one")),
        );
        check(
            |c| c.registration_min_expires_secs = 0,
            Err(("voice.registration_min_expires_secs", "at least 1")),
        );
        check(
            |c| c.registration_default_expires_secs = 10,
            Err(("voice.registration_default_expires_secs", "between")),
        );
        check(
            |c| c.registration_max_expires_secs = 100,
            Err(("voice.registration_default_expires_secs", "max (100)")),
        );
        check(|c| c.max_calls = 0, Err(("voice.max_calls", "at least 1")));
        check(
            |c| c.invite_rate_per_sec = 0,
            Err(("voice.invite_rate_per_sec", "at least 1")),
        );
        check(
            |c| c.invite_rate_burst = 0,
            Err(("voice.invite_rate_burst", "at least 1")),
        );
        check(
            |c| c.ivr.max_digits = 0,
            Err(("voice.ivr.max_digits", "between 1 and 32")),
        );
        check(
            |c| c.ivr.terminator = "##".into(),
            Err(("voice.ivr.terminator", "one key")),
        );
        check(
            |c| c.ivr.terminator = "x".into(),
            Err(("voice.ivr.terminator", "one key")),
        );
        check(|c| c.ivr.terminator = String::new(), Ok(()));
        check(
            |c| c.ivr.inter_digit_timeout_ms = 10,
            Err(("voice.ivr.inter_digit_timeout_ms", "between 100")),
        );
    }

    #[test]
    fn trunks_are_checked_one_by_one() {
        check(
            |c| {
                c.trunks
                    .push(trunk("carrier", &["203.0.113.0/24", "::1"], "", ""))
            },
            Ok(()),
        );
        check(
            |c| c.trunks.push(trunk("pbx", &[], "pbx", "s3cret")),
            Ok(()),
        );
        check(
            |c| c.trunks.push(trunk("", &["10.0.0.1"], "", "")),
            Err(("voice.trunks", "#1 has no name")),
        );
        check(
            |c| {
                c.trunks.push(trunk("a", &["10.0.0.1"], "", ""));
                c.trunks.push(trunk("a", &["10.0.0.2"], "", ""));
            },
            Err(("voice.trunks", "two trunks are named `a`")),
        );
        check(
            |c| c.trunks.push(trunk("a", &["10.0.0.0/33"], "", "")),
            Err(("voice.trunks", "trunk `a`: allow `10.0.0.0/33`")),
        );
        check(
            |c| c.trunks.push(trunk("a", &["carrier.example"], "", "")),
            Err(("voice.trunks", "allow `carrier.example`")),
        );
        check(
            |c| c.trunks.push(trunk("a", &[], "user", "")),
            Err(("voice.trunks", "both username and password")),
        );
        check(
            |c| c.trunks.push(trunk("a", &[], "", "")),
            Err(("voice.trunks", "allow list, credentials or both")),
        );
    }

    #[test]
    fn a_trunk_password_is_redacted_in_debug_output() {
        let shown = format!("{:?}", trunk("pbx", &[], "pbx", "hunter2"));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn the_section_reads_from_toml_with_defaults_and_refuses_unknown_keys() {
        let config: VoiceConfig = toml::from_str(
            r#"
            enabled = true
            digest_algorithms = ["SHA-256"]
            [[trunks]]
            name = "carrier"
            allow = ["192.0.2.10"]
            "#,
        )
        .unwrap();
        assert!(config.enabled);
        assert_eq!(config.digest_algorithms, vec![DigestAlgorithm::Sha256]);
        assert_eq!(config.trunks[0].allow, vec!["192.0.2.10".to_string()]);
        assert_eq!(config.realm, "switchboard");
        assert!(toml::from_str::<VoiceConfig>("listen_port = 5060").is_err());
        assert!(toml::from_str::<VoiceConfig>(r#"digest_algorithms = ["SHA-512"]"#).is_err());
        let round_trip = toml::to_string(&VoiceConfig::default()).unwrap();
        assert_eq!(
            toml::from_str::<VoiceConfig>(&round_trip).unwrap(),
            VoiceConfig::default()
        );
    }
}
