//! Which INVITEs are calls from a trunk: the source address on a trunk's
//! allow-list, the trunk's digest credentials, or both.
//!
//! | source on an allow-list of a trunk … | Authorization           | decision            |
//! |--------------------------------------|-------------------------|---------------------|
//! | without credentials                  | —                       | accept              |
//! | with credentials                     | none / wrong / stale    | 401 (challenge)     |
//! | with credentials                     | right                   | accept              |
//! | none, but a trunk has credentials and no allow-list | as above | as above        |
//! | none, and no trunk takes any address | —                       | 403                 |

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

use engine::agent::SipCredentials;

use super::config::VoiceConfig;
use super::digest::{self, DigestAuth, DigestAuthorization, DigestError};

/// An IP address or a CIDR network (`192.0.2.0/24`, `2001:db8::/32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressRange {
    network: IpAddr,
    prefix_len: u8,
}

impl AddressRange {
    /// Whether `ip` is in the range; an IPv4-mapped IPv6 address counts as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_matches(
                u32::from(net).into(),
                u32::from(ip).into(),
                32,
                self.prefix_len,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_matches(u128::from(net), u128::from(ip), 128, self.prefix_len)
            }
            _ => false,
        }
    }
}

/// The top `prefix_len` of `width` bits of `a` and `b` are equal.
fn prefix_matches(a: u128, b: u128, width: u8, prefix_len: u8) -> bool {
    let shift = u32::from(width - prefix_len);
    prefix_len == 0 || (a >> shift) == (b >> shift)
}

impl FromStr for AddressRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| "not an IP address or CIDR network".to_string())?;
        let width = if network.is_ipv4() { 32 } else { 128 };
        let prefix_len = match prefix {
            None => width,
            Some(prefix) => match prefix.trim().parse::<u8>() {
                Ok(len) if len <= width => len,
                _ => return Err(format!("the prefix length must be 0 to {width}")),
            },
        };
        Ok(AddressRange {
            network,
            prefix_len,
        })
    }
}

impl fmt::Display for AddressRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

/// One configured trunk, parsed.
#[derive(Debug, Clone)]
struct Trunk {
    name: Arc<str>,
    allow: Vec<AddressRange>,
    /// Username and the HA1s of its password; `None`: address only.
    credentials: Option<(String, SipCredentials)>,
}

/// What to do with an INVITE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrunkDecision {
    /// A call from this trunk.
    Accept {
        /// The trunk's configured name.
        trunk: Arc<str>,
    },
    /// 401 with a fresh challenge.
    Challenge {
        /// The client's nonce had expired: say `stale=true`.
        stale: bool,
        /// For the log.
        reason: String,
    },
    /// 403: no trunk takes calls from there.
    Refuse {
        /// For the log.
        reason: String,
    },
}

/// The configured trunks and the digest realm their credentials are in.
#[derive(Debug, Clone)]
pub struct TrunkPolicy {
    trunks: Vec<Trunk>,
    auth: DigestAuth,
}

impl TrunkPolicy {
    /// Parses `config.trunks` (run [`VoiceConfig::validate`] first; an entry
    /// that does not parse is an error naming the key here too).
    pub fn new(config: &VoiceConfig, auth: DigestAuth) -> Result<Self, (&'static str, String)> {
        let mut trunks = Vec::with_capacity(config.trunks.len());
        for trunk in &config.trunks {
            let allow = trunk
                .allow
                .iter()
                .map(|entry| {
                    entry.parse().map_err(|why| {
                        (
                            "voice.trunks",
                            format!("trunk `{}`: allow `{entry}`: {why}", trunk.name),
                        )
                    })
                })
                .collect::<Result<Vec<AddressRange>, _>>()?;
            let credentials = (!trunk.username.is_empty()).then(|| {
                (
                    trunk.username.clone(),
                    digest::credentials(&trunk.username, auth.realm(), trunk.password.expose()),
                )
            });
            trunks.push(Trunk {
                name: trunk.name.as_str().into(),
                allow,
                credentials,
            });
        }
        Ok(TrunkPolicy { trunks, auth })
    }

    /// The challenges a 401 to a trunk carries.
    pub fn challenges(&self, now_unix_secs: u64, stale: bool) -> Vec<String> {
        self.auth.challenges(now_unix_secs, stale)
    }

    /// Decides on an INVITE from `source` with the given `Authorization`
    /// values (all of them: a request may carry one per realm).
    pub fn admit(
        &self,
        source: IpAddr,
        authorizations: &[&str],
        method: &str,
        request_uri: &str,
        now_unix_secs: u64,
    ) -> TrunkDecision {
        let on_list = |trunk: &&Trunk| trunk.allow.iter().any(|range| range.contains(source));
        if let Some(trunk) = self
            .trunks
            .iter()
            .filter(on_list)
            .find(|trunk| trunk.credentials.is_none())
        {
            return TrunkDecision::Accept {
                trunk: trunk.name.clone(),
            };
        }
        let candidates: Vec<&Trunk> = self
            .trunks
            .iter()
            .filter(|trunk| {
                trunk.credentials.is_some() && (trunk.allow.is_empty() || on_list(trunk))
            })
            .collect();
        if candidates.is_empty() {
            return TrunkDecision::Refuse {
                reason: format!("{source} is on no trunk's allow list"),
            };
        }
        let challenge = |error: DigestError| TrunkDecision::Challenge {
            stale: error.is_stale(),
            reason: error.to_string(),
        };
        let parsed: Vec<Result<DigestAuthorization, DigestError>> = authorizations
            .iter()
            .map(|value| DigestAuthorization::parse(value))
            .collect();
        let ours = parsed
            .iter()
            .filter_map(|p| p.as_ref().ok())
            .find(|auth| auth.realm == self.auth.realm());
        let Some(authorization) = ours else {
            return match parsed.into_iter().find_map(Result::err) {
                Some(error) => challenge(error),
                None => TrunkDecision::Challenge {
                    stale: false,
                    reason: "no credentials".into(),
                },
            };
        };
        let Some(trunk) = candidates.iter().find(|trunk| {
            trunk
                .credentials
                .as_ref()
                .is_some_and(|(username, _)| *username == authorization.username)
        }) else {
            return TrunkDecision::Challenge {
                stale: false,
                reason: format!(
                    "username `{}` is no trunk's that may send from {source}",
                    authorization.username
                ),
            };
        };
        let (username, credentials) = trunk.credentials.as_ref().expect("filtered on credentials");
        match self.auth.verify(
            authorization,
            username,
            method,
            request_uri,
            credentials,
            now_unix_secs,
        ) {
            Ok(()) => TrunkDecision::Accept {
                trunk: trunk.name.clone(),
            },
            Err(error) => challenge(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::config::TrunkConfig;
    use crate::sip::digest::{DigestAlgorithm, expected_response};

    const NOW: u64 = 1_800_000_000;
    const URI: &str = "sip:support@192.0.2.1:5060";

    #[test]
    fn address_ranges() {
        let check = |range: &str, ip: &str, expected: bool| {
            let parsed: AddressRange = range.parse().unwrap();
            assert_eq!(
                parsed.contains(ip.parse().unwrap()),
                expected,
                "{range} ∋ {ip}"
            );
        };
        check("192.0.2.7", "192.0.2.7", true);
        check("192.0.2.7", "192.0.2.8", false);
        check("192.0.2.0/24", "192.0.2.200", true);
        check("192.0.2.0/24", "192.0.3.1", false);
        check("0.0.0.0/0", "203.0.113.9", true);
        check("10.0.0.0/8", "::ffff:10.1.2.3", true);
        check("2001:db8::/32", "2001:db8:1::5", true);
        check("2001:db8::/32", "2001:db9::5", false);
        check("2001:db8::/32", "192.0.2.1", false);
        assert!("10.0.0.0/33".parse::<AddressRange>().is_err());
        assert!("::/129".parse::<AddressRange>().is_err());
        assert!("pbx.example".parse::<AddressRange>().is_err());
        assert!("10.0.0.0/x".parse::<AddressRange>().is_err());
    }

    fn policy(trunks: Vec<TrunkConfig>) -> TrunkPolicy {
        let config = VoiceConfig {
            trunks,
            ..VoiceConfig::default()
        };
        config.validate().unwrap();
        let auth = DigestAuth::with_key("switchboard", &[DigestAlgorithm::Md5], [3; 32]);
        TrunkPolicy::new(&config, auth).unwrap()
    }

    fn trunk(name: &str, allow: &[&str], username: &str, password: &str) -> TrunkConfig {
        TrunkConfig::new(name, allow, username, password)
    }

    fn authorization(username: &str, password: &str, nonce: &str) -> String {
        let creds = digest::credentials(username, "switchboard", password);
        let response = expected_response(
            DigestAlgorithm::Md5,
            &creds.ha1_md5,
            "INVITE",
            URI,
            nonce,
            Some(("00000001", "c")),
        );
        format!(
            "Digest username=\"{username}\", realm=\"switchboard\", nonce=\"{nonce}\", uri=\"{URI}\", response=\"{response}\", qop=auth, nc=00000001, cnonce=\"c\""
        )
    }

    fn decide(policy: &TrunkPolicy, source: &str, authorization: Option<&str>) -> TrunkDecision {
        let authorizations: Vec<&str> = authorization.into_iter().collect();
        policy.admit(source.parse().unwrap(), &authorizations, "INVITE", URI, NOW)
    }

    fn accepted(name: &str) -> TrunkDecision {
        TrunkDecision::Accept { trunk: name.into() }
    }

    #[test]
    fn allow_lists_alone_accept_or_refuse() {
        let trunks = policy(vec![trunk("carrier", &["192.0.2.0/24"], "", "")]);
        assert_eq!(decide(&trunks, "192.0.2.9", None), accepted("carrier"));
        assert!(matches!(
            decide(&trunks, "198.51.100.1", None),
            TrunkDecision::Refuse { reason } if reason.contains("198.51.100.1")
        ));
        assert!(matches!(
            decide(&policy(vec![]), "127.0.0.1", None),
            TrunkDecision::Refuse { .. }
        ));
    }

    #[test]
    fn credentials_are_challenged_then_checked() {
        let trunks = policy(vec![
            trunk("pbx", &[], "pbx", "s3cret"),
            trunk("carrier", &["192.0.2.0/24"], "carrier", "pw"),
        ]);
        let nonce = trunks.auth.nonce(NOW);
        assert!(matches!(
            decide(&trunks, "198.51.100.1", None),
            TrunkDecision::Challenge { stale: false, .. }
        ));
        let good = authorization("pbx", "s3cret", &nonce);
        assert_eq!(
            decide(&trunks, "198.51.100.1", Some(&good)),
            accepted("pbx")
        );
        let wrong = authorization("pbx", "nope", &nonce);
        assert!(matches!(
            decide(&trunks, "198.51.100.1", Some(&wrong)),
            TrunkDecision::Challenge { reason, .. } if reason.contains("does not match")
        ));
        // The carrier's credentials are good only from the carrier's network.
        let carrier = authorization("carrier", "pw", &nonce);
        assert!(matches!(
            decide(&trunks, "198.51.100.1", Some(&carrier)),
            TrunkDecision::Challenge { reason, .. } if reason.contains("no trunk's")
        ));
        assert_eq!(
            decide(&trunks, "192.0.2.5", Some(&carrier)),
            accepted("carrier")
        );
        let stale_nonce = trunks.auth.nonce(NOW - 3_600);
        let stale = authorization("pbx", "s3cret", &stale_nonce);
        assert!(matches!(
            decide(&trunks, "198.51.100.1", Some(&stale)),
            TrunkDecision::Challenge { stale: true, .. }
        ));
        assert!(matches!(
            decide(&trunks, "198.51.100.1", Some("Basic cGJ4OnMzY3JldA==")),
            TrunkDecision::Challenge { reason, .. } if reason.contains("not Digest")
        ));
    }

    #[test]
    fn an_address_only_trunk_wins_over_one_that_needs_credentials() {
        let trunks = policy(vec![
            trunk("secure", &["10.0.0.0/8"], "secure", "pw"),
            trunk("open", &["10.1.0.0/16"], "", ""),
        ]);
        assert_eq!(decide(&trunks, "10.1.2.3", None), accepted("open"));
        assert!(matches!(
            decide(&trunks, "10.2.0.1", None),
            TrunkDecision::Challenge { .. }
        ));
    }
}
