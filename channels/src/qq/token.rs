//! The bot's access token: `POST getAppAccessToken {"appId",
//! "clientSecret"}` gives `{"access_token", "expires_in"}` (seconds, a
//! string or a number), sent as `Authorization: QQBot <token>`.
//!
//! One token per account, kept until shortly before it expires: the
//! platform gives a new one only in the last 60 seconds of the old one's
//! life (the old one stays valid meanwhile), so a token is refreshed within
//! that last minute. One refresher at a time: a delivery that needs a token
//! holds the account's lock while it asks, and the deliveries waiting behind
//! it then take the token it got.
//!
//! Neither the AppSecret nor a token ever shows in an error: [`scrub`]
//! removes them from whatever text the platform answered.

use std::time::Duration;

use engine::secret::Secret;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::adapter::DeliveryFailure;

/// How long before its expiry a token is replaced (at most half its life).
const REFRESH_MARGIN: Duration = Duration::from_secs(50);

/// The access tokens of one account.
#[derive(Debug)]
pub struct Tokens {
    client: reqwest::Client,
    token_url: String,
    app_id: String,
    secret: Secret,
    /// The token in use; the lock is held across a refresh (single-flight).
    current: Mutex<Option<AccessToken>>,
}

/// A token and when to replace it.
#[derive(Debug, Clone)]
struct AccessToken {
    value: Secret,
    refresh_at: Instant,
}

impl AccessToken {
    /// A token valid `expires_in` from `fetched_at`.
    fn new(value: String, expires_in: Duration, fetched_at: Instant) -> AccessToken {
        let margin = REFRESH_MARGIN.min(expires_in / 2);
        AccessToken {
            value: Secret::from(value),
            refresh_at: fetched_at + expires_in - margin,
        }
    }

    fn is_fresh(&self, now: Instant) -> bool {
        now < self.refresh_at
    }
}

impl Tokens {
    /// The tokens of the bot `app_id` with AppSecret `secret`, asked of `token_url`.
    pub fn new(
        client: reqwest::Client,
        token_url: String,
        app_id: String,
        secret: Secret,
    ) -> Tokens {
        Tokens {
            client,
            token_url,
            app_id,
            secret,
            current: Mutex::new(None),
        }
    }

    /// A token to call the API with: the current one while it is fresh,
    /// else a new one.
    pub async fn get(&self) -> Result<Secret, DeliveryFailure> {
        let mut current = self.current.lock().await;
        if let Some(token) = current.as_ref()
            && token.is_fresh(Instant::now())
        {
            return Ok(token.value.clone());
        }
        let token = self.fetch().await?;
        let value = token.value.clone();
        *current = Some(token);
        Ok(value)
    }

    /// A token other than `rejected`, which the API refused: the one another
    /// delivery got meanwhile, else a new one.
    pub async fn replace(&self, rejected: &Secret) -> Result<Secret, DeliveryFailure> {
        let mut current = self.current.lock().await;
        if let Some(token) = current.as_ref()
            && token.value != *rejected
            && token.is_fresh(Instant::now())
        {
            return Ok(token.value.clone());
        }
        *current = None;
        let token = self.fetch().await?;
        let value = token.value.clone();
        *current = Some(token);
        Ok(value)
    }

    /// Asks the platform for a token.
    async fn fetch(&self) -> Result<AccessToken, DeliveryFailure> {
        let body = serde_json::json!({
            "appId": self.app_id,
            "clientSecret": self.secret.expose(),
        });
        let sent = self.client.post(&self.token_url).json(&body).send().await;
        let response = sent.map_err(|err| DeliveryFailure::Retry {
            reason: format!("no answer from QQ's access token endpoint: {err}"),
        })?;
        let status = response.status().as_u16();
        // Only read for the token or the reason: an unreadable body is an
        // answer without a token, which `read_answer` reports.
        let text = response.text().await.unwrap_or_default();
        let text = scrub(&text, &[self.secret.expose()]);
        read_answer(status, &text, Instant::now())
    }
}

/// The token in the token endpoint's answer, or why there is none.
fn read_answer(status: u16, text: &str, now: Instant) -> Result<AccessToken, DeliveryFailure> {
    let answer: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    let token = answer.get("access_token").and_then(|value| value.as_str());
    let expires_in = match answer.get("expires_in") {
        Some(serde_json::Value::String(text)) => text.trim().parse::<u64>().ok(),
        Some(value) => value.as_u64(),
        None => None,
    };
    if (200..300).contains(&status)
        && let (Some(token), Some(expires_in)) = (token, expires_in)
        && !token.is_empty()
    {
        return Ok(AccessToken::new(
            token.to_string(),
            Duration::from_secs(expires_in),
            now,
        ));
    }
    let code = answer
        .get("code")
        .or_else(|| answer.get("err_code"))
        .and_then(|code| code.as_i64().or_else(|| code.as_str()?.parse().ok()));
    // A token in an answer that is refused anyway stays out of the reason.
    let message = answer
        .get("message")
        .and_then(|message| message.as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| super::short(&scrub(text, &[token.unwrap_or_default()])));
    let retry = |reason: String| DeliveryFailure::Retry { reason };
    match (status, code) {
        (429 | 500..=599, _) | (_, Some(100001)) => Err(retry(format!(
            "QQ's access token endpoint answered {status}: {message}"
        ))),
        (_, Some(code)) => {
            let why = match code {
                100016 => "the AppID or AppSecret is wrong (check `settings.app_id` and `secret`)",
                100007 => "the AppID is invalid, or the bot is banned or deleted",
                10004 => "no bot has this AppID (check `settings.app_id`)",
                _ => "QQ gave no access token",
            };
            Err(DeliveryFailure::Refused {
                code: code.to_string(),
                reason: format!("{why} (QQ: {message})"),
            })
        }
        (200..=299, None) => Err(retry(format!(
            "QQ's access token endpoint answered without a token and its `expires_in`: {message}"
        ))),
        (_, None) => Err(DeliveryFailure::Refused {
            code: status.to_string(),
            reason: format!("QQ gave no access token: {message}"),
        }),
    }
}

/// `text` with every non-empty one of `secrets` replaced by `<redacted>`.
pub fn scrub(text: &str, secrets: &[&str]) -> String {
    secrets
        .iter()
        .filter(|secret| !secret.is_empty())
        .fold(text.to_string(), |text, secret| {
            text.replace(secret, engine::secret::REDACTED)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(status: u16, text: &str, expected: Result<(&str, u64), DeliveryFailure>) {
        let now = Instant::now();
        let got = read_answer(status, text, now).map(|token| {
            (
                token.value.expose().to_string(),
                (token.refresh_at - now).as_secs(),
            )
        });
        let expected = expected.map(|(token, secs)| (token.to_string(), secs));
        assert_eq!(got, expected, "{status} {text}");
    }

    #[test]
    fn answers_give_a_token_or_say_why_not() {
        // `expires_in` is a string in the documentation's example, a number in its table.
        check(
            200,
            r#"{"access_token":"T1","expires_in":"7200"}"#,
            Ok(("T1", 7150)),
        );
        check(
            200,
            r#"{"access_token":"T1","expires_in":7200}"#,
            Ok(("T1", 7150)),
        );
        // A short life is replaced at half of it.
        check(
            200,
            r#"{"access_token":"T1","expires_in":"60"}"#,
            Ok(("T1", 30)),
        );
        check(
            200,
            r#"{"access_token":"T1","expires_in":"0"}"#,
            Ok(("T1", 0)),
        );
        check(
            200,
            r#"{"code":100016,"message":"invalid appid or secret"}"#,
            Err(DeliveryFailure::Refused {
                code: "100016".into(),
                reason: "the AppID or AppSecret is wrong (check `settings.app_id` and `secret`) (QQ: invalid appid or secret)".into(),
            }),
        );
        check(
            200,
            r#"{"code":100001,"message":"Too many requests"}"#,
            Err(DeliveryFailure::Retry {
                reason: "QQ's access token endpoint answered 200: Too many requests".into(),
            }),
        );
        check(
            502,
            "bad gateway",
            Err(DeliveryFailure::Retry {
                reason: "QQ's access token endpoint answered 502: bad gateway".into(),
            }),
        );
        check(
            200,
            r#"{"access_token":"T1"}"#,
            Err(DeliveryFailure::Retry {
                reason: "QQ's access token endpoint answered without a token and its `expires_in`: {\"access_token\":\"<redacted>\"}".into(),
            }),
        );
        check(
            403,
            "forbidden",
            Err(DeliveryFailure::Refused {
                code: "403".into(),
                reason: "QQ gave no access token: forbidden".into(),
            }),
        );
    }

    #[test]
    fn a_token_is_fresh_until_its_refresh_time() {
        let now = Instant::now();
        let token = AccessToken::new("T".into(), Duration::from_secs(7200), now);
        assert!(token.is_fresh(now));
        assert!(token.is_fresh(now + Duration::from_secs(7149)));
        assert!(!token.is_fresh(now + Duration::from_secs(7150)));
    }

    #[test]
    fn scrub_removes_every_secret() {
        assert_eq!(
            scrub("bad secret s3cr3t, token T0K", &["s3cr3t", "T0K", ""]),
            "bad secret <redacted>, token <redacted>"
        );
    }
}
