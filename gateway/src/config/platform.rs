//! `[platform]` (customer cache, summaries) and `[webhooks]` (outbound
//! notifications) sections.

use engine::secret::Secret;
use serde::{Deserialize, Serialize};

/// The data platform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlatformConfig {
    /// Customers whose profile and recent history stay in memory (least
    /// recently used go first); 0 turns the cache off.
    pub customer_cache_entries: usize,
    /// Write an extractive summary of every session that ends.
    pub summaries: bool,
}

impl Default for PlatformConfig {
    fn default() -> Self {
        PlatformConfig {
            customer_cache_entries: 10_000,
            summaries: true,
        }
    }
}

/// Outbound webhooks: ticket and session events, signed, retried, from a
/// durable outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// Where events go (none by default).
    pub endpoints: Vec<WebhookEndpoint>,
    /// Wait after the first failed delivery; doubles after each further one.
    pub initial_backoff_ms: u64,
    /// The longest wait between attempts.
    pub max_backoff_ms: u64,
    /// Failed attempts before an event is given up (kept in the outbox, marked dead).
    pub max_attempts: u32,
    /// One delivery attempt may take this long.
    pub timeout_ms: u64,
    /// How often the outbox is checked when nothing new was written.
    pub poll_ms: u64,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            endpoints: Vec::new(),
            initial_backoff_ms: 1_000,
            max_backoff_ms: 600_000,
            max_attempts: 20,
            timeout_ms: 10_000,
            poll_ms: 1_000,
        }
    }
}

/// One receiver.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookEndpoint {
    /// A short unique name (`crm`), part of each outbox entry's id.
    pub name: String,
    /// `http://` or `https://` URL the events are POSTed to. Many services
    /// put a key in the path or query (or `user:password@`), so
    /// `check-config` and `Debug` show only its scheme, host and port.
    #[serde(serialize_with = "serialize_redacted_url")]
    pub url: String,
    /// Signs every delivery (HMAC-SHA256); at least 16 characters. Shown as
    /// `<redacted>` by `check-config` and in logs.
    pub secret: Secret,
    /// Event types to send: exact (`ticket.updated`) or a prefix with `*`
    /// (`ticket.*`); empty sends every event.
    #[serde(default)]
    pub events: Vec<String>,
}

impl std::fmt::Debug for WebhookEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookEndpoint")
            .field("name", &self.name)
            .field("url", &redacted_url(&self.url))
            .field("secret", &self.secret)
            .field("events", &self.events)
            .finish()
    }
}

/// `url` with what may hold a key hidden: credentials (`user:pass@`), path
/// and query become `<redacted>`; scheme, host and port stay, so the
/// receiver can still be recognised.
pub fn redacted_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), url),
    };
    let (authority, tail) = match rest.find(['/', '?', '#']) {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let host = match authority.rsplit_once('@') {
        Some((_, host)) => format!("<redacted>@{host}"),
        None => authority.to_string(),
    };
    let tail = if tail.is_empty() || tail == "/" {
        tail.to_string()
    } else {
        "/<redacted>".to_string()
    };
    format!("{scheme}{host}{tail}")
}

fn serialize_redacted_url<S: serde::Serializer>(
    url: &str,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&redacted_url(url))
}

impl WebhookEndpoint {
    /// Does this endpoint want `event_type`?
    pub fn wants(&self, event_type: &str) -> bool {
        self.events.is_empty()
            || self
                .events
                .iter()
                .any(|pattern| match pattern.strip_suffix('*') {
                    Some(prefix) => event_type.starts_with(prefix),
                    None => pattern == event_type,
                })
    }
}

impl WebhooksConfig {
    /// Errors name the key (`webhooks.endpoints[1].url`).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        for (key, value) in [
            ("webhooks.initial_backoff_ms", self.initial_backoff_ms),
            ("webhooks.max_backoff_ms", self.max_backoff_ms),
            ("webhooks.max_attempts", self.max_attempts.into()),
            ("webhooks.timeout_ms", self.timeout_ms),
            ("webhooks.poll_ms", self.poll_ms),
        ] {
            if value == 0 {
                return Err((key, "must be greater than 0".into()));
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for (idx, endpoint) in self.endpoints.iter().enumerate() {
            let at = |what: &str| format!("endpoints[{idx}].{what}");
            let name_ok = !endpoint.name.is_empty()
                && endpoint.name.len() <= 32
                && endpoint.name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if !name_ok {
                return Err((
                    "webhooks.endpoints",
                    format!(
                        "{}: `{}` must be 1 to 32 of a-z, 0-9, `-`, `_`",
                        at("name"),
                        endpoint.name
                    ),
                ));
            }
            if !names.insert(endpoint.name.as_str()) {
                return Err((
                    "webhooks.endpoints",
                    format!("{}: `{}` is used twice", at("name"), endpoint.name),
                ));
            }
            if !(endpoint.url.starts_with("http://") || endpoint.url.starts_with("https://")) {
                return Err((
                    "webhooks.endpoints",
                    format!(
                        "{}: `{}` must start with http:// or https://",
                        at("url"),
                        endpoint.url
                    ),
                ));
            }
            if endpoint.secret.len() < 16 {
                return Err((
                    "webhooks.endpoints",
                    format!("{}: must be at least 16 characters", at("secret")),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(name: &str, url: &str, secret: &str) -> WebhookEndpoint {
        WebhookEndpoint {
            name: name.into(),
            url: url.into(),
            secret: secret.into(),
            events: vec!["ticket.*".into(), "session.closed".into()],
        }
    }

    #[test]
    fn event_patterns() {
        let crm = endpoint("crm", "http://127.0.0.1:1/", "0123456789abcdef");
        assert!(crm.wants("ticket.created") && crm.wants("ticket.updated"));
        assert!(crm.wants("session.closed") && !crm.wants("session.abandoned"));
        let all = WebhookEndpoint {
            events: vec![],
            ..crm
        };
        assert!(all.wants("session.abandoned"));
    }

    #[test]
    fn validation_names_the_endpoint_and_field() {
        let check = |endpoints: Vec<WebhookEndpoint>, expected: Result<(), &str>| {
            let config = WebhooksConfig {
                endpoints,
                ..WebhooksConfig::default()
            };
            let got = config
                .validate()
                .map_err(|(key, reason)| format!("{key}: {reason}"));
            assert_eq!(got, expected.map_err(str::to_owned));
        };
        let good = || endpoint("crm", "https://crm.example/hooks", "0123456789abcdef");
        check(vec![good()], Ok(()));
        check(
            vec![good(), good()],
            Err("webhooks.endpoints: endpoints[1].name: `crm` is used twice"),
        );
        check(
            vec![endpoint("crm", "ftp://x", "0123456789abcdef")],
            Err(
                "webhooks.endpoints: endpoints[0].url: `ftp://x` must start with http:// or https://",
            ),
        );
        check(
            vec![endpoint("crm", "http://x", "short")],
            Err("webhooks.endpoints: endpoints[0].secret: must be at least 16 characters"),
        );
        check(
            vec![endpoint("CRM!", "http://x", "0123456789abcdef")],
            Err(
                "webhooks.endpoints: endpoints[0].name: `CRM!` must be 1 to 32 of a-z, 0-9, `-`, `_`",
            ),
        );
    }
}

#[cfg(test)]
mod redaction_tests {
    use super::redacted_url;

    fn check(url: &str, expected: &str) {
        assert_eq!(redacted_url(url), expected, "{url}");
    }

    #[test]
    fn urls_keep_only_scheme_host_and_port() {
        check("https://crm.example.com", "https://crm.example.com");
        check("https://crm.example.com/", "https://crm.example.com/");
        check(
            "https://crm.example.com:8443/hooks/k3y?token=s3cret",
            "https://crm.example.com:8443/<redacted>",
        );
        check(
            "https://user:pa55@crm.example.com/x",
            "https://<redacted>@crm.example.com/<redacted>",
        );
        check(
            "http://127.0.0.1:9000?key=k",
            "http://127.0.0.1:9000/<redacted>",
        );
        check("http://h#frag", "http://h/<redacted>");
        check("not a url", "not a url");
    }
}
