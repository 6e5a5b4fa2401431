//! The QQ bot channel (kind `qq`): QQ's official bot platform (QQ
//! 机器人开放平台, API v2) in webhook mode. Customers write to the bot one
//! to one, or @-mention it in a group; agents' replies go back through the
//! bot as passive replies to the customer's latest message.
//!
//! ```toml
//! [[channels]]
//! kind = "qq"
//! name = "qq-bot"
//! channel = "qq"
//! secret = "…"                          # the bot's AppSecret
//! settings = { app_id = "102000000" }   # the bot's AppID
//! ```
//!
//! - [`sign`]: the ed25519 key derived from the AppSecret; callbacks are
//!   verified with it and the callback URL validation (op 13) answered.
//! - [`payload`]: the callback's body: `C2C_MESSAGE_CREATE` and
//!   `GROUP_AT_MESSAGE_CREATE` become customer messages, friend and group
//!   events notices, other events nothing.
//! - [`token`]: the access token, one per account, refreshed by one
//!   delivery at a time.
//! - [`api`]: replies, and what the platform's answers mean.
//!
//! Every event is answered `200 {"op":12,"d":0}` (HTTP callback ACK) once
//! its message is durable.

pub mod api;
pub mod payload;
pub mod sign;
pub mod token;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use engine::secret::Secret;
use serde::Deserialize;

use crate::adapter::{
    Accepted, ChannelAccount, ChannelAdapter, Delivery, DeliveryFailure, InboundRequest,
    OutboundMessage, PlatformAnswer, Received,
};
use crate::error::ChannelError;
use crate::limits::InboundLimits;
use crate::registry::ChannelConfig;
use crate::signature::SignatureError;

use self::api::Sent;
use self::payload::Payload;
use self::sign::{BotKey, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use self::token::Tokens;

/// The API's address when `base_url` is empty.
pub const DEFAULT_BASE_URL: &str = "https://api.sgroup.qq.com";
/// Where access tokens come from unless `settings.token_url` says otherwise.
pub const DEFAULT_TOKEN_URL: &str = "https://bots.qq.com/app/getAppAccessToken";

/// The kind's own keys, `settings = { … }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QqSettings {
    /// The bot's AppID (QQ bot console, 开发设置): who asks for tokens.
    pub app_id: String,
    /// The access token endpoint; another one only for tests.
    pub token_url: String,
    /// One request to the platform (a token, a reply) may take this long;
    /// QQ advises no less than 5 s, as a reply may be sent and its answer late.
    pub timeout_ms: u64,
}

impl Default for QqSettings {
    fn default() -> Self {
        QqSettings {
            app_id: String::new(),
            token_url: DEFAULT_TOKEN_URL.to_string(),
            timeout_ms: 5_000,
        }
    }
}

/// One QQ bot.
#[derive(Debug)]
pub struct QqAdapter {
    account: ChannelAccount,
    key: BotKey,
    limits: InboundLimits,
    base_url: reqwest::Url,
    client: reqwest::Client,
    tokens: Tokens,
}

impl QqAdapter {
    /// The adapter of the bot with AppSecret `secret`, calling the API at
    /// `base_url` (empty: [`DEFAULT_BASE_URL`]); errors name the key at fault.
    pub fn new(
        account: ChannelAccount,
        secret: Secret,
        settings: QqSettings,
        limits: InboundLimits,
        base_url: &str,
    ) -> Result<QqAdapter, (String, String)> {
        let error = |key: &str, reason: String| (key.to_string(), reason);
        let key = BotKey::from_secret(secret.expose()).ok_or_else(|| {
            error(
                "secret",
                "must be set: the bot's AppSecret (QQ bot console, 开发设置)".into(),
            )
        })?;
        if settings.app_id.trim().is_empty() {
            return Err(error(
                "settings.app_id",
                "must be set: the bot's AppID (QQ bot console, 开发设置)".into(),
            ));
        }
        if settings.timeout_ms == 0 {
            return Err(error(
                "settings.timeout_ms",
                "must be greater than 0".into(),
            ));
        }
        let base_url = match base_url {
            "" => DEFAULT_BASE_URL,
            url => url,
        };
        let base_url = http_url(base_url).map_err(|reason| error("base_url", reason))?;
        http_url(&settings.token_url).map_err(|reason| error("settings.token_url", reason))?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(settings.timeout_ms))
            .build()
            .map_err(|err| error("base_url", format!("cannot build the HTTP client: {err}")))?;
        let tokens = Tokens::new(client.clone(), settings.token_url, settings.app_id, secret);
        Ok(QqAdapter {
            account,
            key,
            limits,
            base_url,
            client,
            tokens,
        })
    }

    /// For the registry: reads the entry's settings and builds the adapter.
    pub(crate) fn build(
        account: ChannelAccount,
        entry: &ChannelConfig,
        limits: InboundLimits,
    ) -> Result<Arc<dyn ChannelAdapter>, (String, String)> {
        let settings: QqSettings = serde_path_to_error::deserialize(toml::Value::Table(
            entry.settings.clone(),
        ))
        .map_err(|err| {
            let path = err.path().to_string();
            let key = match path.as_str() {
                "." => "settings".to_string(),
                path => format!("settings.{path}"),
            };
            (key, err.into_inner().message().trim().to_string())
        })?;
        let adapter = QqAdapter::new(
            account,
            entry.secret.clone(),
            settings,
            limits,
            &entry.base_url,
        )?;
        Ok(Arc::new(adapter))
    }

    /// The answer to a URL validation: `{"plain_token", "signature"}`.
    fn validation_answer(&self, plain_token: &str, event_ts: &str) -> PlatformAnswer {
        let body = serde_json::json!({
            "plain_token": plain_token,
            "signature": self.key.sign_validation(event_ts, plain_token),
        });
        PlatformAnswer {
            status: 200,
            content_type: "application/json".into(),
            body: body.to_string().into_bytes(),
        }
    }

    /// Posts `body` to `url` with `token`.
    async fn post(&self, url: &reqwest::Url, token: &Secret, body: &serde_json::Value) -> Sent {
        let sent = self
            .client
            .post(url.clone())
            .header("authorization", format!("QQBot {}", token.expose()))
            .json(body)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(err) => {
                return Sent::Failed(DeliveryFailure::Retry {
                    reason: format!("no answer from QQ: {err}"),
                });
            }
        };
        let status = response.status().as_u16();
        // Only read for the id or the reason: an unreadable body is an
        // answer without either, which `api::outcome` handles.
        let text = response.text().await.unwrap_or_default();
        api::outcome(status, &token::scrub(&text, &[token.expose()]))
    }
}

/// `text` parsed as an http(s) URL, or why it is not one.
fn http_url(text: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(text).map_err(|err| format!("`{text}` is not a URL: {err}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("`{text}` must start with http:// or https://"));
    }
    Ok(url)
}

/// At most 200 characters of a platform's answer, for a log line or the agent.
fn short(text: &str) -> String {
    text.chars().take(200).collect()
}

#[async_trait]
impl ChannelAdapter for QqAdapter {
    fn account(&self) -> &ChannelAccount {
        &self.account
    }

    /// Verifies the signature, then reads the payload. The platform signs
    /// every callback; an unsigned one is taken only when it is a URL
    /// validation whose tokens are plain (the platform's example shows one
    /// without signature headers), so that nothing else can be signed with
    /// the bot's key through it.
    fn receive(&self, request: &InboundRequest) -> Result<Received, ChannelError> {
        let timestamp = request.header(TIMESTAMP_HEADER);
        let signature = request.header(SIGNATURE_HEADER);
        let is_signed = timestamp.is_some() || signature.is_some();
        if is_signed {
            self.key.verify(timestamp, signature, &request.body)?;
        }
        let unsigned = || {
            ChannelError::BadSignature(SignatureError::Header {
                header: SIGNATURE_HEADER,
                reason: "is missing",
            })
        };
        let payload = match payload::read(&request.body) {
            Ok(payload) => payload,
            // An unsigned body is not read further than to find a validation.
            Err(_) if !is_signed => return Err(unsigned()),
            Err(err) => return Err(err),
        };
        match payload {
            Payload::Validation {
                plain_token,
                event_ts,
            } => {
                if !is_signed && !payload::is_plain_validation(&plain_token, &event_ts) {
                    return Err(unsigned());
                }
                Ok(Received {
                    immediate_answer: Some(self.validation_answer(&plain_token, &event_ts)),
                    ..Received::default()
                })
            }
            Payload::Dispatch { .. } if !is_signed => Err(unsigned()),
            Payload::Dispatch { t, d } => payload::event(&t, d, self.limits),
        }
    }

    /// `200 {"op":12,"d":0}`: the HTTP callback ACK (`d` 0: handled; botgo
    /// answers 1 for a failure the platform should retry, which switchboard
    /// says with an error status instead).
    fn answer(&self, _accepted: &[Accepted]) -> PlatformAnswer {
        PlatformAnswer {
            status: 200,
            content_type: "application/json".into(),
            body: br#"{"op":12,"d":0}"#.to_vec(),
        }
    }

    /// A passive reply (see [`api`]); a token the API refuses is replaced
    /// and the post made once more.
    async fn deliver(&self, message: OutboundMessage) -> Result<Delivery, DeliveryFailure> {
        let route = api::route(&message)?;
        let url = api::url(&self.base_url, &route);
        let body = api::body(&message, &route);
        let token = self.tokens.get().await?;
        let sent = match self.post(&url, &token, &body).await {
            Sent::TokenRejected(_) => {
                let token = self.tokens.replace(&token).await?;
                self.post(&url, &token, &body).await
            }
            sent => sent,
        };
        match sent {
            Sent::Delivered(delivery) => Ok(delivery),
            Sent::Failed(failure) => Err(failure),
            Sent::TokenRejected(reason) => Err(DeliveryFailure::Retry {
                reason: format!("QQ refused a new access token too ({reason})"),
            }),
        }
    }
}
