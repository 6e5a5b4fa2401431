//! `[[voice.ice_servers]]`: the STUN and TURN servers agents' browsers use
//! to reach switchboard's WebRTC legs (docs/voice.md, "The browser as the
//! phone"). switchboard answers with a host candidate only; a browser behind
//! a NAT or a firewall that blocks UDP to that address needs a TURN relay.
//!
//! TURN credentials come in two kinds: fixed ones (`username`,
//! `credential`), handed to every agent's browser as they are, or — better —
//! a `shared_secret` with the TURN server (coturn's `use-auth-secret`, the
//! "TURN REST API"), from which each agent gets credentials of their own
//! that expire: username `<expiry unix time>:<agent id>`, credential
//! base64(HMAC-SHA1(secret, username)).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use engine::secret::Secret;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha1::Sha1;

/// Longest life of minted TURN credentials.
const MAX_TTL_SECS: u64 = 7 * 86_400;
/// Most servers, and URLs per server.
const MAX_SERVERS: usize = 8;
const MAX_URLS: usize = 8;

/// One STUN or TURN server, as configured.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IceServerConfig {
    /// `stun:host:port`, `turn:host:port?transport=udp|tcp`, `turns:…`.
    pub urls: Vec<String>,
    /// Fixed TURN username (with `credential`).
    #[serde(default)]
    pub username: String,
    /// Fixed TURN password (with `username`).
    #[serde(default)]
    pub credential: Secret,
    /// The secret shared with the TURN server (coturn `static-auth-secret`):
    /// each agent gets time-limited credentials of their own.
    #[serde(default)]
    pub shared_secret: Secret,
    /// How long minted credentials last.
    #[serde(default = "default_ttl")]
    pub credential_ttl_secs: u64,
}

fn default_ttl() -> u64 {
    86_400
}

impl std::fmt::Debug for IceServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceServerConfig")
            .field("urls", &self.urls)
            .field("username", &self.username)
            .field("credential", &self.credential)
            .field("shared_secret", &self.shared_secret)
            .field("credential_ttl_secs", &self.credential_ttl_secs)
            .finish()
    }
}

/// One server as a browser's `RTCIceServer` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// Which candidates agents' browsers may use (`voice.ice_transport_policy`,
/// the browser's `iceTransportPolicy`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IceTransportPolicy {
    /// Any path: direct, through a NAT, or relayed.
    #[default]
    All,
    /// Only through a TURN relay: agents' own addresses are never sent to
    /// switchboard, and the audio takes one known path.
    Relay,
}

/// Checks `[[voice.ice_servers]]` and the policy; returns the bad key and why.
pub fn validate(
    servers: &[IceServerConfig],
    policy: IceTransportPolicy,
) -> Result<(), (&'static str, String)> {
    if policy == IceTransportPolicy::Relay
        && !servers
            .iter()
            .flat_map(|server| &server.urls)
            .any(|url| url.starts_with("turn:") || url.starts_with("turns:"))
    {
        return Err((
            "voice.ice_transport_policy",
            "`relay` needs a TURN server in voice.ice_servers".into(),
        ));
    }
    const KEY: &str = "voice.ice_servers";
    if servers.len() > MAX_SERVERS {
        return Err((KEY, format!("at most {MAX_SERVERS} servers")));
    }
    for (idx, server) in servers.iter().enumerate() {
        let at = |why: String| (KEY, format!("server #{}: {why}", idx + 1));
        if server.urls.is_empty() || server.urls.len() > MAX_URLS {
            return Err(at(format!("`urls` needs 1 to {MAX_URLS} URLs")));
        }
        let mut turn = false;
        for url in &server.urls {
            turn |= check_url(url).map_err(at)?;
        }
        let fixed = !server.username.is_empty() || !server.credential.is_empty();
        let minted = !server.shared_secret.is_empty();
        if fixed && minted {
            return Err(at(
                "set `shared_secret` or `username` and `credential`, not both".into(),
            ));
        }
        if fixed && (server.username.is_empty() || server.credential.is_empty()) {
            return Err(at("set both `username` and `credential`".into()));
        }
        if turn && !fixed && !minted {
            return Err(at(
                "a TURN server needs `shared_secret` or `username` and `credential`".into(),
            ));
        }
        if !(60..=MAX_TTL_SECS).contains(&server.credential_ttl_secs) {
            return Err(at(format!(
                "`credential_ttl_secs` must be between 60 and {MAX_TTL_SECS}"
            )));
        }
    }
    Ok(())
}

/// Checks one URL as a browser's `RTCIceServer` takes it (RFC 7064,
/// RFC 7065): `stun:`, `stuns:`, `turn:` or `turns:`, a host (a name, an
/// IPv4 address or `[IPv6]`), an optional port 1–65535, and on TURN only an
/// optional `?transport=udp` or `tcp`. Returns whether it is TURN.
fn check_url(url: &str) -> Result<bool, String> {
    let bad = |why: &str| format!("`{url}` {why}");
    const SCHEMES: &str = "is not a stun:, stuns:, turn: or turns: URL";
    let (scheme, rest) = url.split_once(':').ok_or_else(|| bad(SCHEMES))?;
    let turn = match scheme {
        "stun" | "stuns" => false,
        "turn" | "turns" => true,
        _ => return Err(bad(SCHEMES)),
    };
    let (address, query) = match rest.split_once('?') {
        Some((address, query)) => (address, Some(query)),
        None => (rest, None),
    };
    match query {
        None => {}
        Some(_) if !turn => return Err(bad("takes no query (only TURN URLs name a transport)")),
        Some("transport=udp" | "transport=tcp") => {}
        Some(_) => return Err(bad("may only end in ?transport=udp or ?transport=tcp")),
    }
    let (host, port) = match address.strip_prefix('[') {
        Some(bracketed) => {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| bad("opens `[` without closing it"))?;
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(bad("has no IPv6 address in `[]`"));
            }
            match after {
                "" => (host, None),
                _ => (
                    host,
                    Some(
                        after
                            .strip_prefix(':')
                            .ok_or_else(|| bad("has junk after the host"))?,
                    ),
                ),
            }
        }
        None => match address.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (address, None),
        },
    };
    let name_like = |host: &str| {
        !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    };
    if !address.starts_with('[') && !name_like(host) {
        return Err(bad("names no host"));
    }
    if let Some(port) = port
        && !matches!(port.parse::<u16>(), Ok(1..))
    {
        return Err(bad("has no port between 1 and 65535"));
    }
    Ok(turn)
}

/// When the soonest minted TURN credentials for a browser given the
/// servers `now` expire; `None` when none are minted.
pub fn minted_expiry(servers: &[IceServerConfig], now: SystemTime) -> Option<SystemTime> {
    servers
        .iter()
        .filter(|server| !server.shared_secret.is_empty())
        .map(|server| now + Duration::from_secs(server.credential_ttl_secs))
        .min()
}

/// The servers for `agent`'s browser now: fixed credentials as they are,
/// minted ones valid for the server's `credential_ttl_secs` from `now`.
pub fn for_agent(servers: &[IceServerConfig], agent: &str, now: SystemTime) -> Vec<IceServer> {
    servers
        .iter()
        .map(|server| {
            let (username, credential) = if !server.shared_secret.is_empty() {
                let (username, credential) = mint(
                    server.shared_secret.expose(),
                    agent,
                    now + Duration::from_secs(server.credential_ttl_secs),
                );
                (Some(username), Some(credential))
            } else if !server.username.is_empty() {
                (
                    Some(server.username.clone()),
                    Some(server.credential.expose().to_owned()),
                )
            } else {
                (None, None)
            };
            IceServer {
                urls: server.urls.clone(),
                username,
                credential,
            }
        })
        .collect()
}

/// TURN REST API credentials for `agent` until `expiry`: username
/// `<unix seconds>:<agent>`, credential base64(HMAC-SHA1(secret, username)).
fn mint(secret: &str, agent: &str, expiry: SystemTime) -> (String, String) {
    let expiry = expiry
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let username = format!("{expiry}:{agent}");
    let mut mac =
        Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(username.as_bytes());
    let credential = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    (username, credential)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(urls: &[&str]) -> IceServerConfig {
        IceServerConfig {
            urls: urls.iter().map(|url| url.to_string()).collect(),
            username: String::new(),
            credential: Secret::default(),
            shared_secret: Secret::default(),
            credential_ttl_secs: default_ttl(),
        }
    }

    fn minted_server() -> IceServerConfig {
        let mut minted = server(&["turns:turn.example.com:5349"]);
        minted.shared_secret = "north".into();
        minted.credential_ttl_secs = 3_600;
        minted
    }

    #[test]
    fn minted_credentials_are_coturns_rest_api() {
        // coturn's turnadmin / the TURN REST API draft: HMAC-SHA1 of the
        // username with the shared secret, base64. Checked against
        // `printf '1700000000:ann' | openssl dgst -sha1 -hmac north -binary | base64`.
        let expiry = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let (username, credential) = mint("north", "ann", expiry);
        assert_eq!(username, "1700000000:ann");
        assert_eq!(credential, "jeamH6dA5l2I9g3jmieza7CzEDo=");
    }

    #[test]
    fn each_server_is_handed_over_with_its_kind_of_credentials() {
        let stun = server(&["stun:stun.example.com:3478"]);
        let mut fixed = server(&["turn:turn.example.com:3478?transport=udp"]);
        fixed.username = "desk".into();
        fixed.credential = "pw".into();
        let minted = minted_server();
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let servers = for_agent(&[stun, fixed, minted], "ann", now);
        assert_eq!(servers[0].username, None);
        assert_eq!(servers[0].credential, None);
        assert_eq!(servers[1].username.as_deref(), Some("desk"));
        assert_eq!(servers[1].credential.as_deref(), Some("pw"));
        assert_eq!(servers[2].username.as_deref(), Some("1700003600:ann"));
        assert_eq!(
            servers[2].credential,
            Some(mint("north", "ann", now + Duration::from_secs(3_600)).1)
        );
        assert_eq!(minted_expiry(&[server(&["stun:s.example.com"])], now), None);
        let mut longer = server(&["turn:t2.example.com"]);
        longer.shared_secret = "south".into();
        assert_eq!(
            minted_expiry(&[longer, minted_server()], now),
            Some(now + Duration::from_secs(3_600)),
            "the soonest"
        );
        let json = serde_json::to_value(&servers[0]).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"urls": ["stun:stun.example.com:3478"]})
        );
    }

    #[test]
    fn bad_servers_are_refused_naming_the_server() {
        let cases: Vec<(IceServerConfig, &str)> = vec![
            (server(&[]), "`urls` needs"),
            (server(&["http://turn.example.com"]), "is not a stun:"),
            (server(&["turn:"]), "names no host"),
            (server(&["turn:?transport=udp"]), "names no host"),
            (server(&["turn:t.example.com:99999"]), "no port between"),
            (server(&["turn:t.example.com:0"]), "no port between"),
            (
                server(&["stun:s.example.com?transport=udp"]),
                "takes no query",
            ),
            (
                server(&["turn:t.example.com?transport=sctp"]),
                "may only end in",
            ),
            (server(&["turn:[::1"]), "without closing"),
            (server(&["turn:[nope]:3478"]), "no IPv6 address"),
            (server(&["turn:t.example.com:3478/x"]), "no port between"),
            (server(&["turn:turn.example.com"]), "needs `shared_secret`"),
            (
                IceServerConfig {
                    username: "u".into(),
                    ..server(&["turn:t.example.com"])
                },
                "set both",
            ),
            (
                IceServerConfig {
                    username: "u".into(),
                    credential: "c".into(),
                    shared_secret: "s".into(),
                    ..server(&["turn:t.example.com"])
                },
                "not both",
            ),
            (
                IceServerConfig {
                    shared_secret: "s".into(),
                    credential_ttl_secs: 10,
                    ..server(&["turn:t.example.com"])
                },
                "credential_ttl_secs",
            ),
        ];
        for (config, why) in cases {
            let (key, message) = validate(
                &[server(&["stun:ok.example.com"]), config],
                IceTransportPolicy::All,
            )
            .unwrap_err();
            assert_eq!(key, "voice.ice_servers");
            assert!(message.starts_with("server #2: "), "{message}");
            assert!(message.contains(why), "{message} should say {why}");
        }
        for good in [
            "stun:stun.example.com",
            "stun:192.0.2.1:3478",
            "stuns:stun.example.com:5349",
            "turn:[2001:db8::1]:3478?transport=udp",
            "turns:turn.example.com:5349?transport=tcp",
        ] {
            assert!(check_url(good).is_ok(), "{good}");
        }
        let stun = [server(&["stun:stun.example.com:3478"])];
        assert!(validate(&stun, IceTransportPolicy::All).is_ok());
        let many = vec![server(&["stun:s.example.com"]); MAX_SERVERS + 1];
        assert!(validate(&many, IceTransportPolicy::All).is_err());
        // Relay only needs a TURN server.
        let (key, _) = validate(&stun, IceTransportPolicy::Relay).unwrap_err();
        assert_eq!(key, "voice.ice_transport_policy");
        let turn = IceServerConfig {
            shared_secret: "s".into(),
            ..server(&["turns:t.example.com:5349"])
        };
        assert!(validate(&[turn], IceTransportPolicy::Relay).is_ok());
    }
}
