//! The WeChat APIs a delivery calls, and what their answers mean.
//!
//! - `GET /cgi-bin/token?grant_type=client_credential&appid=…&secret=…`:
//!   the access token.
//! - `POST /cgi-bin/message/custom/send?access_token=…`: a customer-service
//!   message (客服消息), text or image, to a customer who wrote in the
//!   last 48 hours.
//! - `POST /cgi-bin/media/upload?access_token=…&type=image`: an image as
//!   temporary media (kept three days), multipart field `media`, for its
//!   `media_id`.
//!
//! Every answer is JSON; one with a non-zero `errcode` is a refusal, whose
//! meaning [`failure`] gives. No error this module makes holds the
//! AppSecret or a token: they travel in URLs, so a transport error is
//! kept without its URL, and WeChat's own words are scrubbed of both.

use engine::secret::{REDACTED, Secret};
use serde::Deserialize;

use crate::adapter::DeliveryFailure;
use crate::wechat::token::FreshToken;

/// The largest image a delivery downloads to send (WeChat takes up to
/// 10 MB; an agent's image link over this is sent as text).
pub const MAX_IMAGE_BYTES: usize = 2 * 1024 * 1024;

/// Token errors: the token expired, is not the latest, or is not valid.
pub const TOKEN_ERRCODES: [i64; 3] = [40001, 40014, 42001];

/// A call that did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// No answer, an HTTP error status, or an answer that is not WeChat's
    /// JSON: worth trying again.
    Transport(String),
    /// WeChat answered with a non-zero `errcode`.
    Refused {
        /// WeChat's `errcode`.
        errcode: i64,
        /// WeChat's `errmsg`, scrubbed of the secret and the token.
        errmsg: String,
    },
}

impl ApiError {
    /// The token was refused: fetch another and try again.
    pub fn is_token_error(&self) -> bool {
        matches!(self, ApiError::Refused { errcode, .. } if TOKEN_ERRCODES.contains(errcode))
    }
}

/// The fields of WeChat's answers that switchboard reads.
#[derive(Debug, Default, Deserialize)]
struct Answer {
    #[serde(default)]
    errcode: i64,
    #[serde(default)]
    errmsg: String,
    access_token: Option<String>,
    expires_in: Option<u64>,
    media_id: Option<String>,
    msgid: Option<serde_json::Value>,
}

/// One account's view of the WeChat API.
#[derive(Debug, Clone)]
pub struct Api {
    /// `https://api.weixin.qq.com` unless configured (tests: a local fake).
    pub base_url: String,
    /// The AppID.
    pub app_id: String,
    /// The AppSecret.
    pub secret: Secret,
    /// Bounded by `settings.timeout_ms` per call.
    pub client: reqwest::Client,
}

impl Api {
    /// A new access token.
    pub async fn fetch_token(&self) -> Result<FreshToken, ApiError> {
        let sent = self
            .client
            .get(format!("{}/cgi-bin/token", self.base_url))
            .query(&[
                ("grant_type", "client_credential"),
                ("appid", self.app_id.as_str()),
                ("secret", self.secret.expose()),
            ])
            .send()
            .await;
        let answer = self.answer(sent, None).await?;
        match (answer.access_token, answer.expires_in) {
            (Some(token), Some(expires_in)) if !token.is_empty() => Ok(FreshToken {
                value: Secret::from(token),
                expires_in,
            }),
            _ => Err(ApiError::Transport(
                "WeChat's token answer has no `access_token` and `expires_in`".into(),
            )),
        }
    }

    /// Sends a customer-service message (`body` is its JSON); WeChat's
    /// `msgid`, when it gives one.
    pub async fn send(
        &self,
        token: &Secret,
        body: &serde_json::Value,
    ) -> Result<Option<String>, ApiError> {
        let sent = self
            .client
            .post(format!("{}/cgi-bin/message/custom/send", self.base_url))
            .query(&[("access_token", token.expose())])
            // WeChat reads the body as UTF-8 JSON; `json()` would escape
            // nothing differently, but says so in the content type.
            .json(body)
            .send()
            .await;
        let answer = self.answer(sent, Some(token)).await?;
        Ok(answer.msgid.map(|id| match id {
            serde_json::Value::String(id) => id,
            other => other.to_string(),
        }))
    }

    /// Uploads an image as temporary media; its `media_id`.
    pub async fn upload_image(&self, token: &Secret, image: &Image) -> Result<String, ApiError> {
        let part = reqwest::multipart::Part::bytes(image.bytes.clone())
            .file_name(image.file_name.clone())
            .mime_str(&image.content_type)
            .map_err(|err| ApiError::Transport(format!("cannot upload the image: {err}")))?;
        let sent = self
            .client
            .post(format!("{}/cgi-bin/media/upload", self.base_url))
            .query(&[("access_token", token.expose()), ("type", "image")])
            .multipart(reqwest::multipart::Form::new().part("media", part))
            .send()
            .await;
        let answer = self.answer(sent, Some(token)).await?;
        answer
            .media_id
            .filter(|id| !id.is_empty())
            .ok_or_else(|| ApiError::Transport("WeChat's upload answer has no `media_id`".into()))
    }

    /// Reads an answer: transport errors without their URL, WeChat's
    /// refusals with its words scrubbed.
    async fn answer(
        &self,
        sent: Result<reqwest::Response, reqwest::Error>,
        token: Option<&Secret>,
    ) -> Result<Answer, ApiError> {
        let response = sent.map_err(|err| {
            ApiError::Transport(format!("no answer from WeChat: {}", err.without_url()))
        })?;
        let status = response.status();
        let text = response.text().await.map_err(|err| {
            ApiError::Transport(format!("WeChat's answer broke off: {}", err.without_url()))
        })?;
        if !status.is_success() {
            return Err(ApiError::Transport(format!(
                "WeChat answered HTTP {}: {}",
                status.as_u16(),
                self.scrub(&short(&text), token)
            )));
        }
        let answer: Answer = serde_json::from_str(&text).map_err(|_| {
            ApiError::Transport(format!(
                "WeChat's answer is not its JSON: {}",
                self.scrub(&short(&text), token)
            ))
        })?;
        if answer.errcode != 0 {
            return Err(ApiError::Refused {
                errcode: answer.errcode,
                errmsg: self.scrub(&answer.errmsg, token),
            });
        }
        Ok(answer)
    }

    /// `text` with the AppSecret and `token` replaced by `<redacted>`.
    fn scrub(&self, text: &str, token: Option<&Secret>) -> String {
        let mut text = text.to_string();
        for secret in [Some(&self.secret), token].into_iter().flatten() {
            if !secret.is_empty() {
                text = text.replace(secret.expose(), REDACTED);
            }
        }
        text
    }

    /// Downloads the image at `url` (an agent's image link): at most
    /// [`MAX_IMAGE_BYTES`], of an image type WeChat takes. The error says
    /// why, for a log line; the delivery then sends the text.
    pub async fn download_image(&self, url: &str) -> Result<Image, String> {
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err("the image link is not http:// or https://".into());
        }
        let mut response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|err| format!("cannot download the image: {err}"))?;
        if !response.status().is_success() {
            return Err(format!(
                "the image link answered HTTP {}",
                response.status().as_u16()
            ));
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .map(|value| value.trim().to_ascii_lowercase())
            .unwrap_or_default();
        let extension = match content_type.as_str() {
            "image/jpeg" | "image/jpg" => "jpg",
            "image/png" => "png",
            "image/gif" => "gif",
            other => {
                return Err(format!(
                    "the image link is `{other}`, not a JPEG, PNG or GIF image"
                ));
            }
        };
        if response
            .content_length()
            .is_some_and(|n_bytes| n_bytes > MAX_IMAGE_BYTES as u64)
        {
            return Err(format!("the image is over {MAX_IMAGE_BYTES} bytes"));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|err| format!("the image download broke off: {err}"))?
        {
            if bytes.len() + chunk.len() > MAX_IMAGE_BYTES {
                return Err(format!("the image is over {MAX_IMAGE_BYTES} bytes"));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Image {
            bytes,
            file_name: format!("image.{extension}"),
            content_type,
        })
    }
}

/// An image downloaded to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// `image.jpg`, `image.png`, `image.gif`: WeChat reads the type from it.
    pub file_name: String,
    /// As the link served it.
    pub content_type: String,
}

/// What a failed customer-service call means for the delivery (see
/// docs/channels.md, "Delivery errors").
pub fn failure(err: ApiError) -> DeliveryFailure {
    let (errcode, errmsg) = match err {
        ApiError::Transport(reason) => return DeliveryFailure::Retry { reason },
        ApiError::Refused { errcode, errmsg } => (errcode, errmsg),
    };
    let refused = |reason: String| DeliveryFailure::Refused {
        code: errcode.to_string(),
        reason,
    };
    match errcode {
        -1 => DeliveryFailure::Retry {
            reason: "WeChat is busy (errcode -1): trying again later".into(),
        },
        45009 | 45011 => DeliveryFailure::Retry {
            reason: format!(
                "the account is over WeChat's API call quota (errcode {errcode}): trying again later"
            ),
        },
        code if TOKEN_ERRCODES.contains(&code) => DeliveryFailure::Retry {
            reason: format!(
                "WeChat refused a freshly fetched access token too (errcode {code}: {errmsg}); is another system fetching tokens for this AppID?"
            ),
        },
        45015 => refused(
            "WeChat refuses: the customer has not written in the last 48 hours, so the account may not reply (errcode 45015)".into(),
        ),
        45047 => refused(
            "WeChat refuses: the account has sent this customer as many messages as it may until the customer writes again (errcode 45047)".into(),
        ),
        43004 => refused(
            "WeChat refuses: the customer no longer follows the account (errcode 43004)".into(),
        ),
        40003 => refused(
            "WeChat refuses: the customer's id is not an openid of this account (errcode 40003)"
                .into(),
        ),
        code => refused(format!("WeChat refuses (errcode {code}): {errmsg}")),
    }
}

/// What a failed token fetch means for the delivery. Always a retry: a
/// refusal here is the account's configuration (a wrong AppSecret, this
/// server's address not on the account's IP whitelist), and once it is
/// fixed the waiting replies go out; the reason says what to fix.
pub fn token_failure(err: ApiError, account: &str) -> DeliveryFailure {
    let reason = match err {
        ApiError::Transport(reason) => {
            format!("cannot get an access token from WeChat: {reason}")
        }
        ApiError::Refused { errcode, errmsg } => {
            let fix = match errcode {
                40001 | 40125 | 41004 => format!(
                    "check `secret` (the AppSecret) of channel account `{account}`"
                ),
                40013 | 41002 => format!(
                    "check `settings.app_id` (the AppID) of channel account `{account}`"
                ),
                40164 | 61004 => "add this server's public IP address to the account's IP whitelist in the WeChat console".to_string(),
                -1 => "WeChat is busy; trying again later".to_string(),
                _ => "trying again later".to_string(),
            };
            format!("WeChat gives no access token (errcode {errcode}: {errmsg}): {fix}")
        }
    };
    DeliveryFailure::Retry { reason }
}

/// At most 200 characters of an answer, for a reason.
fn short(text: &str) -> String {
    text.chars().take(200).collect()
}
