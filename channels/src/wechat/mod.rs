//! The WeChat official account channel (kind `wechat`): a service account's
//! followers write to it in WeChat, agents answer through the
//! customer-service message API.
//!
//! In: WeChat sends every message and event of the account to the server
//! URL set in its console, `/api/v1/channels/<name>/inbound`.
//!
//! - `GET ?signature&timestamp&nonce&echostr` checks the URL when it is
//!   set: [`signature`](crypto::signature) is the SHA-1 of the sorted
//!   Token, timestamp and nonce; a match is answered with `echostr` as it
//!   came (in safe mode too).
//! - `POST` is one push in XML ([`xml`]). In plain mode (明文模式) it is
//!   signed by `signature` as above. In safe mode (安全模式, when
//!   `settings.encoding_aes_key` is set) the URL says `encrypt_type=aes`,
//!   the body holds the push encrypted in `<Encrypt>` ([`crypto`]), and
//!   `msg_signature` signs the Token, timestamp, nonce and that element.
//!   Either way the timestamp must be within `settings.tolerance_secs` of
//!   the receive time. A customer's message becomes one message (its
//!   `MsgId` the platform's id, so WeChat's retries are stored once);
//!   follows, unfollows and other events become notices.
//! - The answer is `success`: WeChat then shows the customer nothing, and
//!   the reply comes through the API (WeChat waits 5 s for an answer; the
//!   gateway gives it once the message is durable).
//!
//! Out: [`WechatAdapter::deliver`] sends an agent's message as a
//! customer-service message ([`api`]): text, or an image (downloaded,
//! uploaded as temporary media) when the agent's message is one image
//! link. It needs the account's access token ([`token`]), fetched with the
//! AppID and AppSecret and shared by every delivery of the account.

pub mod api;
pub mod crypto;
pub mod token;
pub mod xml;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use engine::secret::Secret;
use serde::Deserialize;

use crate::adapter::{
    Accepted, ChannelAccount, ChannelAdapter, Delivery, DeliveryFailure, InboundRequest,
    OutboundMessage, PlatformAnswer, Received,
};
use crate::error::ChannelError;
use crate::limits::InboundLimits;
use crate::registry::{self, ChannelConfig};
use crate::signature::SignatureError;
use crate::wechat::api::{Api, ApiError};
use crate::wechat::crypto::{DecryptError, SafeMode};
use crate::wechat::token::AccessTokens;
use crate::wechat::xml::Push;

/// The WeChat API when `base_url` is empty.
pub const DEFAULT_BASE_URL: &str = "https://api.weixin.qq.com";

/// The kind's own keys, `settings = { … }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WechatSettings {
    /// The AppID (开发者ID, `wx…`): safe mode checks that a push is for
    /// it, and the access token is fetched with it. Required.
    pub app_id: String,
    /// The Token (令牌) of the console's server configuration, 3 to 32
    /// letters and digits: every push is signed with it. Required.
    pub token: Secret,
    /// The EncodingAESKey (消息加解密密钥), 43 characters: set when the
    /// console's message encryption is safe mode (or compatible mode).
    pub encoding_aes_key: Option<Secret>,
    /// How far a push's `timestamp` may be from the receive time, either way.
    pub tolerance_secs: u64,
    /// One call to the WeChat API (or one image download) may take this long.
    pub timeout_ms: u64,
}

impl Default for WechatSettings {
    fn default() -> Self {
        WechatSettings {
            app_id: String::new(),
            token: Secret::default(),
            encoding_aes_key: None,
            tolerance_secs: 300,
            timeout_ms: 5_000,
        }
    }
}

/// Why an adapter cannot be built from checked settings.
#[derive(Debug, thiserror::Error)]
pub enum WechatBuildError {
    /// `settings.encoding_aes_key` is not an EncodingAESKey; says why.
    #[error("{0}")]
    EncodingAesKey(String),
    /// The HTTP client does not start (its TLS backend).
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(reqwest::Error),
}

/// One WeChat official account.
#[derive(Debug)]
pub struct WechatAdapter {
    account: ChannelAccount,
    settings: WechatSettings,
    /// `Some` in safe mode.
    safe_mode: Option<SafeMode>,
    limits: InboundLimits,
    api: Api,
    tokens: AccessTokens,
}

impl WechatAdapter {
    /// The adapter of one account with checked `settings`, its AppSecret
    /// and the API's `base_url` (empty: [`DEFAULT_BASE_URL`]).
    pub fn new(
        account: ChannelAccount,
        app_secret: Secret,
        settings: WechatSettings,
        limits: InboundLimits,
        base_url: &str,
    ) -> Result<WechatAdapter, WechatBuildError> {
        let safe_mode = settings
            .encoding_aes_key
            .as_ref()
            .map(|key| SafeMode::new(key.expose(), &settings.app_id))
            .transpose()
            .map_err(WechatBuildError::EncodingAesKey)?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(settings.timeout_ms))
            .build()
            .map_err(WechatBuildError::HttpClient)?;
        let base_url = match base_url.trim_end_matches('/') {
            "" => DEFAULT_BASE_URL.to_string(),
            url => url.to_string(),
        };
        Ok(WechatAdapter {
            api: Api {
                base_url,
                app_id: settings.app_id.clone(),
                secret: app_secret,
                client,
            },
            account,
            settings,
            safe_mode,
            limits,
            tokens: AccessTokens::default(),
        })
    }

    /// For the registry: checks the entry; errors name the key.
    pub(crate) fn build(
        account: ChannelAccount,
        entry: &ChannelConfig,
        limits: InboundLimits,
    ) -> Result<Arc<dyn ChannelAdapter>, (String, String)> {
        if entry.secret.is_empty() {
            return Err((
                "secret".into(),
                "is required: the account's AppSecret (开发者密码)".into(),
            ));
        }
        let settings: WechatSettings = registry::kind_settings(entry)?;
        let app_id_ok = !settings.app_id.is_empty()
            && settings.app_id.len() <= 32
            && settings.app_id.bytes().all(|b| b.is_ascii_alphanumeric());
        // "is required" when absent, "must be" when present but wrong.
        let demand = |value: &str| {
            if value.is_empty() {
                "is required:"
            } else {
                "must be"
            }
        };
        if !app_id_ok {
            return Err((
                "settings.app_id".into(),
                format!(
                    "{} the account's AppID (开发者ID, like `wx1234567890abcdef`), 1 to 32 letters and digits",
                    demand(&settings.app_id)
                ),
            ));
        }
        let token = settings.token.expose();
        let token_ok =
            (3..=32).contains(&token.len()) && token.bytes().all(|b| b.is_ascii_alphanumeric());
        if !token_ok {
            return Err((
                "settings.token".into(),
                format!(
                    "{} the Token (令牌) of the console's server configuration, 3 to 32 letters and digits",
                    demand(token)
                ),
            ));
        }
        for (key, value) in [
            ("settings.tolerance_secs", settings.tolerance_secs),
            ("settings.timeout_ms", settings.timeout_ms),
        ] {
            if value == 0 {
                return Err((key.into(), "must be greater than 0".into()));
            }
        }
        let adapter = WechatAdapter::new(
            account,
            entry.secret.clone(),
            settings,
            limits,
            &entry.base_url,
        )
        .map_err(|err| match err {
            WechatBuildError::EncodingAesKey(reason) => {
                ("settings.encoding_aes_key".to_string(), reason)
            }
            WechatBuildError::HttpClient(_) => ("base_url".to_string(), err.to_string()),
        })?;
        Ok(Arc::new(adapter))
    }

    /// `GET`: WeChat checks the server URL; `echostr` back when signed.
    fn verify_url(&self, query: &Query) -> Result<Received, ChannelError> {
        let timestamp = query.signed_part("timestamp")?;
        let nonce = query.signed_part("nonce")?;
        self.check_signature("signature", query, &[timestamp, nonce])?;
        let echostr = query
            .get("echostr")
            .ok_or_else(|| ChannelError::malformed("echostr", "is missing"))?;
        let echostr_ok = !echostr.is_empty()
            && echostr.len() <= 256
            && echostr.bytes().all(|b| b.is_ascii_graphic());
        if !echostr_ok {
            return Err(ChannelError::malformed(
                "echostr",
                "must be 1 to 256 printable ASCII characters",
            ));
        }
        Ok(Received {
            immediate_answer: Some(PlatformAnswer {
                status: 200,
                content_type: "text/plain".into(),
                body: echostr.as_bytes().to_vec(),
            }),
            ..Received::default()
        })
    }

    /// `POST`: one push, checked and read.
    fn receive_push(
        &self,
        query: &Query,
        request: &InboundRequest,
    ) -> Result<Received, ChannelError> {
        let timestamp = query.signed_part("timestamp")?;
        let nonce = query.signed_part("nonce")?;
        let encrypted = match query.get("encrypt_type") {
            None | Some("raw") => false,
            Some("aes") => true,
            Some(other) => {
                return Err(ChannelError::Unsupported(format!(
                    "`encrypt_type={other}`: WeChat's are `raw` and `aes`"
                )));
            }
        };
        let fields = match (&self.safe_mode, encrypted) {
            (None, false) => {
                self.check_signature("signature", query, &[timestamp, nonce])?;
                self.check_time(timestamp, request)?;
                xml::parse(&request.body)?
            }
            (Some(safe_mode), true) => {
                let envelope = xml::parse(&request.body)?;
                let encrypt = envelope.required("Encrypt")?;
                self.check_signature("msg_signature", query, &[timestamp, nonce, encrypt])?;
                self.check_time(timestamp, request)?;
                let plain = safe_mode.decrypt(encrypt).map_err(|err| match err {
                    DecryptError::WrongAppId { .. } => ChannelError::BadSignature(
                        SignatureError::Platform(format!("the push's `Encrypt` {err}")),
                    ),
                    other => ChannelError::malformed("Encrypt", other.to_string()),
                })?;
                xml::parse(plain.as_bytes())?
            }
            (None, true) => {
                return Err(ChannelError::Unsupported(format!(
                    "the push is encrypted (`encrypt_type=aes`) but channel account `{}` has no settings.encoding_aes_key",
                    self.account.name
                )));
            }
            (Some(_), false) => {
                return Err(ChannelError::BadSignature(SignatureError::Platform(
                    "the push is not encrypted, but the account is in safe mode (settings.encoding_aes_key is set): set 安全模式 in the WeChat console, or remove the key".into(),
                )));
            }
        };
        Ok(match xml::to_push(&fields, &self.limits)? {
            Push::Message(message) => Received {
                messages: vec![message],
                ..Received::default()
            },
            Push::Notice(notice) => Received {
                notices: vec![notice],
                ..Received::default()
            },
        })
    }

    /// The query's `name` (`signature`, `msg_signature`) is the signature
    /// of the Token and `parts`.
    fn check_signature(
        &self,
        name: &str,
        query: &Query,
        parts: &[&str],
    ) -> Result<(), ChannelError> {
        let given = query.get(name).ok_or_else(|| {
            ChannelError::BadSignature(SignatureError::Platform(format!(
                "no `{name}` in the query"
            )))
        })?;
        let mut signed = vec![self.settings.token.expose()];
        signed.extend_from_slice(parts);
        if !crypto::signatures_match(&crypto::signature(&signed), given) {
            return Err(ChannelError::BadSignature(SignatureError::Platform(
                format!(
                    "`{name}` does not match (a Token other than settings.token, or the request was changed)"
                ),
            )));
        }
        Ok(())
    }

    /// The push's `timestamp` is within the tolerance of its arrival.
    fn check_time(&self, timestamp: &str, request: &InboundRequest) -> Result<(), ChannelError> {
        let t: i64 = timestamp.parse().map_err(|_| {
            ChannelError::BadSignature(SignatureError::Platform(
                "`timestamp` is not unix seconds".into(),
            ))
        })?;
        let tolerance_secs = self.settings.tolerance_secs;
        let tolerance = i64::try_from(tolerance_secs).unwrap_or(i64::MAX);
        let age_secs = request.received_at.timestamp().saturating_sub(t);
        if age_secs > tolerance {
            return Err(SignatureError::Stale {
                age_secs,
                tolerance_secs,
            }
            .into());
        }
        if -age_secs > tolerance {
            return Err(SignatureError::Future {
                ahead_secs: -age_secs,
                tolerance_secs,
            }
            .into());
        }
        Ok(())
    }

    /// Calls the API with the account's token; when WeChat refuses the
    /// token, once more with a new one.
    async fn with_token<T, Call, Calling>(&self, call: Call) -> Result<T, DeliveryFailure>
    where
        Call: Fn(Secret) -> Calling,
        Calling: std::future::Future<Output = Result<T, ApiError>>,
    {
        let token = self.token().await?;
        match call(token.clone()).await {
            Err(err) if err.is_token_error() => {
                self.tokens.forget(&token).await;
                let fresh = self.token().await?;
                call(fresh).await.map_err(api::failure)
            }
            other => other.map_err(api::failure),
        }
    }

    async fn token(&self) -> Result<Secret, DeliveryFailure> {
        self.tokens
            .get(Instant::now(), || self.api.fetch_token())
            .await
            .map_err(|err| api::token_failure(err, &self.account.name))
    }

    /// The `media_id` of the image at `url`; `None` when it cannot be
    /// downloaded or WeChat does not take it, so the text goes instead.
    async fn upload_image(&self, url: &str) -> Result<Option<String>, DeliveryFailure> {
        let image = match self.api.download_image(url).await {
            Ok(image) => image,
            Err(reason) => {
                tracing::warn!(account = %self.account.name, %reason, "the image link cannot be sent as an image; sending the text");
                return Ok(None);
            }
        };
        let api = &self.api;
        let image = &image;
        match self
            .with_token(|token| async move { api.upload_image(&token, image).await })
            .await
        {
            Ok(media_id) => Ok(Some(media_id)),
            Err(DeliveryFailure::Refused { code, reason }) => {
                tracing::warn!(account = %self.account.name, %code, %reason, "WeChat does not take the image; sending the text");
                Ok(None)
            }
            Err(retry) => Err(retry),
        }
    }
}

#[async_trait]
impl ChannelAdapter for WechatAdapter {
    fn account(&self) -> &ChannelAccount {
        &self.account
    }

    fn receive(&self, request: &InboundRequest) -> Result<Received, ChannelError> {
        let query = Query::parse(&request.query);
        match request.method.as_str() {
            "GET" => self.verify_url(&query),
            "POST" => self.receive_push(&query, request),
            other => Err(ChannelError::Unsupported(format!(
                "`{other}`: WeChat sends GET (the URL check) and POST (pushes)"
            ))),
        }
    }

    /// `200 success`: WeChat shows the customer nothing and sends the push
    /// no more.
    fn answer(&self, _accepted: &[Accepted]) -> PlatformAnswer {
        PlatformAnswer {
            status: 200,
            content_type: "text/plain".into(),
            body: b"success".to_vec(),
        }
    }

    /// A customer-service message (see the module doc and [`api::failure`]).
    async fn deliver(&self, message: OutboundMessage) -> Result<Delivery, DeliveryFailure> {
        let media_id = match &message.image_url {
            Some(url) => self.upload_image(url).await?,
            None => None,
        };
        let body = match media_id {
            Some(media_id) => serde_json::json!({
                "touser": message.external_id,
                "msgtype": "image",
                "image": { "media_id": media_id },
            }),
            None => serde_json::json!({
                "touser": message.external_id,
                "msgtype": "text",
                "text": { "content": message.text },
            }),
        };
        let api = &self.api;
        let body = &body;
        let platform_message_id = self
            .with_token(|token| async move { api.send(&token, body).await })
            .await?;
        Ok(Delivery {
            platform_message_id,
        })
    }
}

/// A request's query parameters, percent-decoded.
#[derive(Debug, Default)]
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(query: &str) -> Query {
        Query(
            query
                .split('&')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    (percent_decode(key), percent_decode(value))
                })
                .collect(),
        )
    }

    /// The first value of `name`.
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// A signed part (`timestamp`, `nonce`): without it nothing is signed.
    fn signed_part(&self, name: &str) -> Result<&str, ChannelError> {
        self.get(name).ok_or_else(|| {
            ChannelError::BadSignature(SignatureError::Platform(format!(
                "no `{name}` in the query"
            )))
        })
    }
}

/// `%XX` and `+` decoded; a `%` not followed by two hex digits is kept
/// as it is.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let hex = |at: usize| {
        bytes
            .get(at)
            .and_then(|&byte| char::from(byte).to_digit(16))
    };
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        match (bytes[at], hex(at + 1), hex(at + 2)) {
            (b'%', Some(high), Some(low)) => {
                decoded.push((high * 16 + low) as u8);
                at += 3;
            }
            (b'+', _, _) => {
                decoded.push(b' ');
                at += 1;
            }
            (byte, _, _) => {
                decoded.push(byte);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}
