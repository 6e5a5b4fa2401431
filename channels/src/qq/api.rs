//! Sending an agent's message: where it goes, what is posted, and what the
//! platform's answer means.
//!
//! - One-to-one: `POST {base_url}/v2/users/{openid}/messages`.
//! - Group: `POST {base_url}/v2/groups/{group_openid}/messages`.
//!
//! Body: `{"content", "msg_type": 0, "msg_id", "msg_seq"}`. `msg_id` (the
//! customer's message, from the reply context) makes it a passive reply,
//! the only kind QQ takes from most bots; `msg_seq` (the message's `seq` in
//! its session, the same on every retry) tells two replies to one message
//! apart, and a second post with the same pair is dropped by the platform.
//!
//! The platform's error codes come from its documentation (`openapi/error`)
//! and, for the v2 message codes it does not list (`40034005`, `40054005`,
//! `11244`, …), from the answers its SDK users report.

use serde::Deserialize;

use crate::adapter::{Delivery, DeliveryFailure, OutboundMessage};

/// Where a reply goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A one-to-one chat, by the user's openid.
    User(String),
    /// A group, by its openid.
    Group(String),
}

/// Where a reply goes and what it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The chat.
    pub target: Target,
    /// The customer's message it replies to; `None`: an active message.
    pub msg_id: Option<String>,
}

/// What [`payload`](super::payload) put in `InboundMessage::reply_context`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplyContext {
    group_openid: Option<String>,
    msg_id: Option<String>,
}

/// The route of `message`: its reply context's group and message, or the
/// customer's one-to-one chat when it has none.
pub fn route(message: &OutboundMessage) -> Result<Route, DeliveryFailure> {
    let Some(context) = &message.reply_context else {
        return Ok(Route {
            target: Target::User(message.external_id.clone()),
            msg_id: None,
        });
    };
    let context: ReplyContext =
        serde_json::from_str(context).map_err(|err| DeliveryFailure::Refused {
            code: "reply_context".into(),
            reason: format!("the reply route is not one the QQ adapter wrote: {err}"),
        })?;
    let target = match context.group_openid {
        Some(group_openid) => Target::Group(group_openid),
        None => Target::User(message.external_id.clone()),
    };
    Ok(Route {
        target,
        msg_id: context.msg_id,
    })
}

/// The URL a reply on `route` is posted to.
pub fn url(base_url: &reqwest::Url, route: &Route) -> reqwest::Url {
    let (kind, id) = match &route.target {
        Target::User(openid) => ("users", openid),
        Target::Group(group_openid) => ("groups", group_openid),
    };
    let mut url = base_url.clone();
    // An http(s) URL always has path segments; `QqAdapter::build` only
    // takes http(s) URLs.
    if let Ok(mut segments) = url.path_segments_mut() {
        segments
            .pop_if_empty()
            .extend(["v2", kind, id.as_str(), "messages"]);
    }
    url
}

/// The JSON body of `message` on `route`: text (`msg_type` 0).
pub fn body(message: &OutboundMessage, route: &Route) -> serde_json::Value {
    let mut body = serde_json::json!({
        "content": message.text,
        "msg_type": 0,
    });
    if let Some(msg_id) = &route.msg_id {
        body["msg_id"] = msg_id.clone().into();
        body["msg_seq"] = message.seq.into();
    }
    body
}

/// What one post came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// The platform took it.
    Delivered(Delivery),
    /// The access token was refused: get another and post once more.
    TokenRejected(String),
    /// A delivery failure as it will be reported.
    Failed(DeliveryFailure),
}

/// Codes meaning the access token is missing, expired or not valid.
const TOKEN_CODES: &[i64] = &[11241, 11242, 11243, 11244];
/// Codes worth a retry: rate limits (22009 messages, 20028 channel writes).
const RETRY_CODES: &[i64] = &[22009, 20028];
/// The same `msg_id` + `msg_seq` was sent before: this delivery is a retry
/// of one the platform took.
const DUPLICATE_CODE: i64 = 40054005;

/// What a post's answer (`status`, body `text`) means.
pub fn outcome(status: u16, text: &str) -> Sent {
    let answer: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    let code = answer
        .get("code")
        .or_else(|| answer.get("err_code"))
        .and_then(|code| code.as_i64().or_else(|| code.as_str()?.parse().ok()))
        .filter(|code| *code != 0);
    let message = answer
        .get("message")
        .and_then(|message| message.as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| super::short(text));
    let id = answer
        .get("id")
        .and_then(|id| id.as_str())
        .map(str::to_owned);
    match (status, code) {
        (200..=299, _) if id.is_some() => Sent::Delivered(Delivery {
            platform_message_id: id,
        }),
        (_, Some(DUPLICATE_CODE)) | (200..=299, None) => Sent::Delivered(Delivery {
            platform_message_id: None,
        }),
        (401, _) => Sent::TokenRejected(format!("401: {message}")),
        (_, Some(code)) if TOKEN_CODES.contains(&code) => {
            Sent::TokenRejected(format!("{code}: {message}"))
        }
        (_, Some(code)) if RETRY_CODES.contains(&code) => Sent::Failed(DeliveryFailure::Retry {
            reason: format!("QQ's rate limit ({code}): {message}"),
        }),
        (408 | 429 | 500..=599, _) => Sent::Failed(DeliveryFailure::Retry {
            reason: format!("QQ answered {status}: {message}"),
        }),
        (_, code) => {
            let code = code.map_or_else(|| status.to_string(), |code| code.to_string());
            let reason = match refusal(&code) {
                Some(why) => format!("{why} (QQ: {message})"),
                None => format!("QQ refused the message: {message}"),
            };
            Sent::Failed(DeliveryFailure::Refused { code, reason })
        }
    }
}

/// A plain-English reason for the refusals an agent will meet.
fn refusal(code: &str) -> Option<&'static str> {
    Some(match code {
        "40034005" | "40034031" | "304027" => {
            "the customer's message is too old to reply to: QQ takes replies within 60 minutes of a one-to-one message and 5 minutes of a group message"
        }
        "40034128" => {
            "the reply window of the customer's message has closed, or it has had its 5 replies"
        }
        "40034024" | "304026" => {
            "QQ does not know the customer message this replies to (or it is another bot's)"
        }
        "40034102" | "40034105" => {
            "QQ takes no message that replies to nothing (an active message) from this bot: the customer must write first"
        }
        "304003" => {
            "the text holds a link whose domain is not registered in the QQ bot console (message URL settings)"
        }
        "40054007" | "40054018" => "the text is too long for QQ",
        "40034006" | "1100101" => "QQ refused the content under its content rules",
        "50006" => "QQ refuses an empty message",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(reply_context: Option<&str>) -> OutboundMessage {
        OutboundMessage {
            delivery_id: "d1".into(),
            external_id: "U1".into(),
            text: "hello".into(),
            image_url: None,
            seq: 7,
            reply_context: reply_context.map(str::to_owned),
        }
    }

    #[test]
    fn routes_and_bodies_follow_the_reply_context() {
        let base = reqwest::Url::parse("https://api.sgroup.qq.com").unwrap();
        let check = |context: Option<&str>, expected_url: &str, expected_body: &str| {
            let message = message(context);
            let route = route(&message).unwrap();
            assert_eq!(url(&base, &route).as_str(), expected_url, "{context:?}");
            assert_eq!(
                body(&message, &route).to_string(),
                expected_body,
                "{context:?}"
            );
        };
        check(
            Some(r#"{"msg_id":"M1"}"#),
            "https://api.sgroup.qq.com/v2/users/U1/messages",
            r#"{"content":"hello","msg_id":"M1","msg_seq":7,"msg_type":0}"#,
        );
        check(
            Some(r#"{"group_openid":"G1","msg_id":"M2"}"#),
            "https://api.sgroup.qq.com/v2/groups/G1/messages",
            r#"{"content":"hello","msg_id":"M2","msg_seq":7,"msg_type":0}"#,
        );
        check(
            None,
            "https://api.sgroup.qq.com/v2/users/U1/messages",
            r#"{"content":"hello","msg_type":0}"#,
        );
        // A base with a path, and an id that needs escaping.
        let base = reqwest::Url::parse("http://127.0.0.1:9/qq/").unwrap();
        let route = Route {
            target: Target::User("a/b".into()),
            msg_id: None,
        };
        assert_eq!(
            url(&base, &route).as_str(),
            "http://127.0.0.1:9/qq/v2/users/a%2Fb/messages"
        );
        let err = super::route(&message(Some("not json"))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "delivery refused by the platform (reply_context): the reply route is not one the QQ adapter wrote: expected ident at line 1 column 2"
        );
    }

    #[test]
    fn answers_mean_delivered_retry_refused_or_a_new_token() {
        let check = |status: u16, text: &str, expected: Sent| {
            assert_eq!(outcome(status, text), expected, "{status} {text}");
        };
        let delivered = |id: Option<&str>| {
            Sent::Delivered(Delivery {
                platform_message_id: id.map(str::to_owned),
            })
        };
        check(
            200,
            r#"{"id":"P1","timestamp":1699240000}"#,
            delivered(Some("P1")),
        );
        check(200, "", delivered(None));
        check(
            200,
            r#"{"err_code":40054005,"message":"消息被去重"}"#,
            delivered(None),
        );
        check(
            400,
            r#"{"code":40054005,"message":"消息被去重"}"#,
            delivered(None),
        );
        check(
            401,
            r#"{"message":"token not exist or expire","code":11244}"#,
            Sent::TokenRejected("401: token not exist or expire".into()),
        );
        check(
            500,
            r#"{"message":"token not exist or expire","code":11244,"err_code":11244,"trace_id":"x"}"#,
            Sent::TokenRejected("11244: token not exist or expire".into()),
        );
        check(
            429,
            "slow down",
            Sent::Failed(DeliveryFailure::Retry {
                reason: "QQ answered 429: slow down".into(),
            }),
        );
        check(
            400,
            r#"{"code":22009,"message":"msg limit exceed"}"#,
            Sent::Failed(DeliveryFailure::Retry {
                reason: "QQ's rate limit (22009): msg limit exceed".into(),
            }),
        );
        check(
            503,
            r#"{"code":12003,"message":"ResponseInvalid"}"#,
            Sent::Failed(DeliveryFailure::Retry {
                reason: "QQ answered 503: ResponseInvalid".into(),
            }),
        );
        check(
            400,
            r#"{"message":"回复消息msg_id已过期","code":40034005,"err_code":40034005,"trace_id":"t"}"#,
            Sent::Failed(DeliveryFailure::Refused {
                code: "40034005".into(),
                reason: "the customer's message is too old to reply to: QQ takes replies within 60 minutes of a one-to-one message and 5 minutes of a group message (QQ: 回复消息msg_id已过期)".into(),
            }),
        );
        check(
            400,
            r#"{"code":40034102,"message":"主动消息失败, 无权限"}"#,
            Sent::Failed(DeliveryFailure::Refused {
                code: "40034102".into(),
                reason: "QQ takes no message that replies to nothing (an active message) from this bot: the customer must write first (QQ: 主动消息失败, 无权限)".into(),
            }),
        );
        check(
            403,
            r#"{"code":11253,"message":"no permission"}"#,
            Sent::Failed(DeliveryFailure::Refused {
                code: "11253".into(),
                reason: "QQ refused the message: no permission".into(),
            }),
        );
        check(
            404,
            "not found",
            Sent::Failed(DeliveryFailure::Refused {
                code: "404".into(),
                reason: "QQ refused the message: not found".into(),
            }),
        );
    }
}
