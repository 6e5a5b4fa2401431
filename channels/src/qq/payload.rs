//! What a QQ callback's body holds: the payload `{"op", "d", "t", "id"}`
//! and, for the events switchboard reads, the customer message in `d`.
//!
//! Unknown fields are ignored (the platform adds fields over time); a field
//! switchboard needs and cannot read is named by its path (`d.author`).

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::adapter::{InboundMessage, Notice, Received};
use crate::error::ChannelError;
use crate::limits::{self, InboundLimits};

/// `op` of an event (a dispatch).
pub const OP_DISPATCH: i64 = 0;
/// `op` of the callback URL validation.
pub const OP_VALIDATION: i64 = 13;
/// One-to-one message to the bot.
pub const C2C_MESSAGE_CREATE: &str = "C2C_MESSAGE_CREATE";
/// Message in a group that @-mentions the bot.
pub const GROUP_AT_MESSAGE_CREATE: &str = "GROUP_AT_MESSAGE_CREATE";

/// What a body asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// op 13: prove the bot holds the AppSecret by signing these.
    Validation {
        /// The text to sign, sent back as is.
        plain_token: String,
        /// Signed before `plain_token`.
        event_ts: String,
    },
    /// op 0: an event of type `t` with its data `d`.
    Dispatch {
        /// The event type (`C2C_MESSAGE_CREATE`).
        t: String,
        /// The event's data, read according to `t`.
        d: serde_json::Value,
    },
}

#[derive(Debug, Deserialize)]
struct WirePayload {
    op: i64,
    #[serde(default)]
    d: serde_json::Value,
    t: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireValidation {
    plain_token: String,
    event_ts: String,
}

#[derive(Debug, Deserialize)]
struct WireMessage {
    id: String,
    author: WireAuthor,
    #[serde(default)]
    content: String,
    timestamp: String,
    /// Group messages only.
    group_openid: Option<String>,
    #[serde(default)]
    attachments: Vec<WireAttachment>,
}

#[derive(Debug, Deserialize)]
struct WireAuthor {
    /// One-to-one messages: the user's openid for this bot.
    user_openid: Option<String>,
    /// Group messages: the member's openid in this group.
    member_openid: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireAttachment {
    content_type: Option<String>,
    url: Option<String>,
}

/// Management events with `d.openid` (a user).
const USER_EVENTS: &[&str] = &[
    "FRIEND_ADD",
    "FRIEND_DEL",
    "C2C_MSG_REJECT",
    "C2C_MSG_RECEIVE",
];
/// Management events with `d.op_member_openid` (the member who acted).
const GROUP_EVENTS: &[&str] = &[
    "GROUP_ADD_ROBOT",
    "GROUP_DEL_ROBOT",
    "GROUP_MSG_REJECT",
    "GROUP_MSG_RECEIVE",
];

/// Reads `value` as `T`; errors name the field under `at` (`d` gives
/// `d.author`; `""`, the body itself, gives `op`, or `body` for the whole).
fn typed<T: DeserializeOwned>(value: serde_json::Value, at: &str) -> Result<T, ChannelError> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let reason = err.into_inner().to_string();
        let field = match (path.as_str(), at) {
            (".", "") => "body".to_string(),
            (".", at) => at.to_string(),
            (path, "") => path.to_string(),
            (path, at) => format!("{at}.{path}"),
        };
        ChannelError::malformed(field, reason)
    })
}

/// The payload of a body.
pub fn read(body: &[u8]) -> Result<Payload, ChannelError> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|err| ChannelError::malformed("body", format!("not JSON: {err}")))?;
    if !value.is_object() {
        return Err(ChannelError::malformed("body", "must be a JSON object"));
    }
    let payload: WirePayload = typed(value, "")?;
    match payload.op {
        OP_VALIDATION => {
            let validation: WireValidation = typed(payload.d, "d")?;
            Ok(Payload::Validation {
                plain_token: validation.plain_token,
                event_ts: validation.event_ts,
            })
        }
        OP_DISPATCH => {
            let t = payload
                .t
                .ok_or_else(|| ChannelError::malformed("t", "is missing: an event needs a type"))?;
            Ok(Payload::Dispatch { t, d: payload.d })
        }
        op => Err(ChannelError::Unsupported(format!(
            "`op` {op}: a QQ callback is an event (0) or a URL validation (13)"
        ))),
    }
}

/// An unsigned validation is answered only when it cannot be mistaken for
/// anything else signed with the bot's key: `event_ts` digits and
/// `plain_token` letters, digits, `-`, `_`, so that `event_ts +
/// plain_token` is never a timestamp followed by a JSON body.
pub fn is_plain_validation(plain_token: &str, event_ts: &str) -> bool {
    let token_ok = (1..=128).contains(&plain_token.len())
        && plain_token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let ts_ok = (1..=20).contains(&event_ts.len()) && event_ts.bytes().all(|b| b.is_ascii_digit());
    token_ok && ts_ok
}

/// What an event of type `t` holds for switchboard: a customer message, a
/// notice, or nothing (a type it does not read).
pub fn event(
    t: &str,
    d: serde_json::Value,
    limits: InboundLimits,
) -> Result<Received, ChannelError> {
    let mut received = Received::default();
    match t {
        C2C_MESSAGE_CREATE | GROUP_AT_MESSAGE_CREATE => {
            let is_group = t == GROUP_AT_MESSAGE_CREATE;
            match message(typed(d, "d")?, is_group, limits)? {
                Ok(message) => received.messages.push(message),
                Err(notice) => received.notices.push(notice),
            }
        }
        t if USER_EVENTS.contains(&t) => {
            if let Some(openid) = d.get("openid").and_then(|id| id.as_str()) {
                received.notices.push(Notice {
                    external_id: openid.to_string(),
                    what: t.to_string(),
                });
            }
        }
        t if GROUP_EVENTS.contains(&t) => {
            if let Some(openid) = d.get("op_member_openid").and_then(|id| id.as_str()) {
                received.notices.push(Notice {
                    external_id: openid.to_string(),
                    what: t.to_string(),
                });
            }
        }
        // Another type (a channel event, an interaction): acknowledged,
        // nothing read, as the platform expects of an event nobody handles.
        _ => {}
    }
    Ok(received)
}

/// The customer message of a message event, or a notice when it holds
/// nothing switchboard can show (no text and no attachment).
fn message(
    wire: WireMessage,
    is_group: bool,
    limits: InboundLimits,
) -> Result<Result<InboundMessage, Notice>, ChannelError> {
    limits::check_message_id("d.id", &wire.id)?;
    let (external_id, id_field) = if is_group {
        (wire.author.member_openid, "d.author.member_openid")
    } else {
        (wire.author.user_openid, "d.author.user_openid")
    };
    let external_id = external_id.ok_or_else(|| ChannelError::malformed(id_field, "is missing"))?;
    limits::check_external_id(id_field, &external_id)?;
    let reply_context = if is_group {
        let group_openid = wire
            .group_openid
            .ok_or_else(|| ChannelError::malformed("d.group_openid", "is missing"))?;
        limits::check_external_id("d.group_openid", &group_openid)?;
        serde_json::json!({ "group_openid": group_openid, "msg_id": wire.id })
    } else {
        serde_json::json!({ "msg_id": wire.id })
    };
    let sent_at = DateTime::parse_from_rfc3339(&wire.timestamp)
        .map_err(|err| {
            ChannelError::malformed("d.timestamp", format!("not an RFC 3339 time: {err}"))
        })?
        .with_timezone(&Utc);
    let content = without_leading_mention(wire.content.trim());
    if !content.is_empty() {
        limits.check_text("d.content", content)?;
    }
    let mut lines: Vec<String> = Vec::new();
    if !content.is_empty() {
        lines.push(content.to_string());
    }
    for (idx, attachment) in wire.attachments.iter().enumerate() {
        let Some(url) = attachment
            .url
            .as_deref()
            .filter(|url| !url.trim().is_empty())
        else {
            return Err(ChannelError::malformed(
                format!("d.attachments[{idx}].url"),
                "is missing",
            ));
        };
        let label = attachment_label(attachment.content_type.as_deref().unwrap_or_default());
        lines.push(format!("[{label}] {}", url.trim()));
    }
    if lines.is_empty() {
        return Ok(Err(Notice {
            external_id,
            what: "empty message".into(),
        }));
    }
    let text = lines.join("\n");
    let n_chars = text.chars().count();
    if n_chars > limits.max_text_chars {
        return Err(ChannelError::TooLong {
            field: "d.attachments".into(),
            n_chars,
            max_chars: limits.max_text_chars,
        });
    }
    Ok(Ok(InboundMessage {
        external_id,
        text,
        platform_message_id: wire.id,
        display_name: None,
        sent_at,
        reply_context: Some(reply_context.to_string()),
    }))
}

/// `content` without one leading `<@…>` / `<@!…>` mention (QQ removes the
/// bot's own mention from a group @-message, but clients may leave one).
fn without_leading_mention(content: &str) -> &str {
    if content.starts_with("<@")
        && let Some(end) = content.find('>')
    {
        return content[end + 1..].trim_start();
    }
    content
}

/// How an attachment shows in the text, by its `content_type`
/// (`image/png`, `video/mp4`, `voice`, `file`).
fn attachment_label(content_type: &str) -> &'static str {
    let kind = content_type.split('/').next().unwrap_or_default();
    match kind {
        "image" => "image",
        "video" => "video",
        "voice" | "audio" => "voice",
        "file" => "file",
        _ => "attachment",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: InboundLimits = InboundLimits { max_text_chars: 60 };

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn check(body: &str, expected: Result<Received, (&str, &str)>) {
        let got = read(body.as_bytes()).and_then(|payload| match payload {
            Payload::Dispatch { t, d } => event(&t, d, LIMITS),
            other => panic!("{body}: not an event: {other:?}"),
        });
        match (got, expected) {
            (Ok(got), Ok(expected)) => assert_eq!(got, expected, "{body}"),
            (Err(err), Err((field, message))) => {
                assert_eq!(err.field(), Some(field), "{body}: {err}");
                assert_eq!(err.to_string(), message, "{body}");
            }
            (got, expected) => panic!("{body}: got {got:?}, expected {expected:?}"),
        }
    }

    fn messages(messages: Vec<InboundMessage>) -> Received {
        Received {
            messages,
            ..Received::default()
        }
    }

    fn notice(external_id: &str, what: &str) -> Received {
        Received {
            notices: vec![Notice {
                external_id: external_id.into(),
                what: what.into(),
            }],
            ..Received::default()
        }
    }

    fn c2c(d: &str) -> String {
        format!(r#"{{"op":0,"id":"C2C_MESSAGE_CREATE:1","d":{d},"t":"C2C_MESSAGE_CREATE"}}"#)
    }

    fn group(d: &str) -> String {
        format!(
            r#"{{"op":0,"id":"GROUP_AT_MESSAGE_CREATE:1","d":{d},"t":"GROUP_AT_MESSAGE_CREATE"}}"#
        )
    }

    // The examples of the platform's documentation (`send-receive/event.md`).
    const C2C: &str = r#"{"author":{"user_openid":"E4F4AEA33253A2797FB897C50B81D7ED"},"content":"123","id":"ROBOT1.0_.b6nx.CVryAO0nR58RXuU6SC.m92gc19j02qKqdm8ek!","timestamp":"2023-11-06T13:37:18+08:00"}"#;
    const GROUP: &str = r#"{"author":{"member_openid":"E4F4AEA33253A2797FB897C50B81D7ED"},"content":" 123","group_openid":"C9F778FE6ADF9D1D1DBE395BF744A33A","id":"ROBOT1.0_eBIyWnxpmSu6uLQ7u7fU0eGloKGYg4eEa737vRyKnMCgyZjKi7JLYkQ9B0VapbiY","timestamp":"2023-11-06T13:37:18+08:00"}"#;

    fn c2c_message(text: &str) -> InboundMessage {
        InboundMessage {
            external_id: "E4F4AEA33253A2797FB897C50B81D7ED".into(),
            text: text.into(),
            platform_message_id: "ROBOT1.0_.b6nx.CVryAO0nR58RXuU6SC.m92gc19j02qKqdm8ek!".into(),
            display_name: None,
            sent_at: at("2023-11-06T05:37:18Z"),
            reply_context: Some(
                r#"{"msg_id":"ROBOT1.0_.b6nx.CVryAO0nR58RXuU6SC.m92gc19j02qKqdm8ek!"}"#.into(),
            ),
        }
    }

    #[test]
    fn one_to_one_and_group_messages_are_read() {
        check(&c2c(C2C), Ok(messages(vec![c2c_message("123")])));
        check(
            &group(GROUP),
            Ok(messages(vec![InboundMessage {
                external_id: "E4F4AEA33253A2797FB897C50B81D7ED".into(),
                text: "123".into(),
                platform_message_id: "ROBOT1.0_eBIyWnxpmSu6uLQ7u7fU0eGloKGYg4eEa737vRyKnMCgyZjKi7JLYkQ9B0VapbiY".into(),
                display_name: None,
                sent_at: at("2023-11-06T05:37:18Z"),
                reply_context: Some(
                    r#"{"group_openid":"C9F778FE6ADF9D1D1DBE395BF744A33A","msg_id":"ROBOT1.0_eBIyWnxpmSu6uLQ7u7fU0eGloKGYg4eEa737vRyKnMCgyZjKi7JLYkQ9B0VapbiY"}"#.into(),
                ),
            }])),
        );
        // Fields switchboard does not read are ignored.
        check(
            &c2c(&C2C.replace(
                r#""content""#,
                r#""message_scene":{"source":"default"},"message_type":0,"content""#,
            )),
            Ok(messages(vec![c2c_message("123")])),
        );
        // A leading mention is dropped.
        check(
            &c2c(&C2C.replace(r#""123""#, r#""<@!9876> 123""#)),
            Ok(messages(vec![c2c_message("123")])),
        );
    }

    #[test]
    fn attachments_become_lines_and_an_empty_message_a_notice() {
        let image = r#""attachments":[{"content_type":"image/png","filename":"a.png","height":10,"width":10,"size":99,"url":"https://multimedia.nt.qq.com.cn/a.png"}]"#;
        check(
            &c2c(&C2C.replace(r#""content":"123""#, image)),
            Ok(messages(vec![c2c_message(
                "[image] https://multimedia.nt.qq.com.cn/a.png",
            )])),
        );
        let two = r#""attachments":[{"content_type":"voice","url":"https://q/v.silk"},{"content_type":"file","url":"https://q/f"}]"#;
        check(
            &c2c(&C2C.replace(r#""content":"123""#, &format!(r#""content":"look",{two}"#))),
            Ok(messages(vec![c2c_message(
                "look\n[voice] https://q/v.silk\n[file] https://q/f",
            )])),
        );
        check(
            &c2c(&C2C.replace(r#""123""#, r#""   ""#)),
            Ok(notice("E4F4AEA33253A2797FB897C50B81D7ED", "empty message")),
        );
        check(
            &c2c(&C2C.replace(
                r#""content":"123""#,
                r#""attachments":[{"content_type":"image/png"}]"#,
            )),
            Err((
                "d.attachments[0].url",
                "invalid `d.attachments[0].url`: is missing",
            )),
        );
        check(
            &c2c(&C2C.replace(
                r#""content":"123""#,
                &format!(
                    r#""content":"{}","attachments":[{{"content_type":"image/png","url":"https://q/long-image-url-00000"}}]"#,
                    "x".repeat(40)
                ),
            )),
            Err((
                "d.attachments",
                "field `d.attachments`: 79 characters is over the limit of 60 (limits.max_body_chars)",
            )),
        );
    }

    #[test]
    fn bad_bodies_name_the_field_at_fault() {
        check(
            "{",
            Err((
                "body",
                "invalid `body`: not JSON: EOF while parsing an object at line 1 column 1",
            )),
        );
        check("[]", Err(("body", "invalid `body`: must be a JSON object")));
        check(
            r#"{"d":{}}"#,
            Err(("body", "invalid `body`: missing field `op`")),
        );
        check(
            r#"{"op":"zero"}"#,
            Err((
                "op",
                "invalid `op`: invalid type: string \"zero\", expected i64",
            )),
        );
        check(
            r#"{"op":0,"d":{}}"#,
            Err(("t", "invalid `t`: is missing: an event needs a type")),
        );
        check(
            &c2c(&C2C.replace("E4F4AEA33253A2797FB897C50B81D7ED", &"x".repeat(257))),
            Err((
                "d.author.user_openid",
                "invalid `d.author.user_openid`: must be 1 to 256 characters, not blank",
            )),
        );
        // A group message's author is a member: `user_openid` is not read.
        check(
            &group(&GROUP.replace("member_openid", "user_openid")),
            Err((
                "d.author.member_openid",
                "invalid `d.author.member_openid`: is missing",
            )),
        );
        check(
            &group(&GROUP.replace("group_openid", "group_id")),
            Err(("d.group_openid", "invalid `d.group_openid`: is missing")),
        );
        check(
            &c2c(&C2C.replace(r#","timestamp":"2023-11-06T13:37:18+08:00""#, "")),
            Err(("d", "invalid `d`: missing field `timestamp`")),
        );
        check(
            &c2c(&C2C.replace("2023-11-06T13:37:18+08:00", "today")),
            Err((
                "d.timestamp",
                "invalid `d.timestamp`: not an RFC 3339 time: premature end of input",
            )),
        );
        check(
            &c2c(&C2C.replace(r#""content":"123""#, r#""content":5"#)),
            Err((
                "d.content",
                "invalid `d.content`: invalid type: integer `5`, expected a string",
            )),
        );
        check(
            &c2c(&C2C.replace("123", &"长".repeat(61))),
            Err((
                "d.content",
                "field `d.content`: 61 characters is over the limit of 60 (limits.max_body_chars)",
            )),
        );
        check(
            &c2c(&C2C.replace(
                "ROBOT1.0_.b6nx.CVryAO0nR58RXuU6SC.m92gc19j02qKqdm8ek!",
                &"m".repeat(129),
            )),
            Err(("d.id", "invalid `d.id`: must be 1 to 128 bytes")),
        );
        let err = read(br#"{"op":1,"d":42}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unsupported: `op` 1: a QQ callback is an event (0) or a URL validation (13)"
        );
    }

    #[test]
    fn management_events_are_notices_and_other_events_nothing() {
        check(
            r#"{"op":0,"d":{"openid":"U1","timestamp":1699240365},"t":"FRIEND_ADD"}"#,
            Ok(notice("U1", "FRIEND_ADD")),
        );
        check(
            r#"{"op":0,"d":{"group_openid":"G1","op_member_openid":"M1","timestamp":1699240248},"t":"GROUP_ADD_ROBOT"}"#,
            Ok(notice("M1", "GROUP_ADD_ROBOT")),
        );
        check(
            r#"{"op":0,"d":{"channel_id":"1"},"t":"AT_MESSAGE_CREATE"}"#,
            Ok(Received::default()),
        );
    }

    #[test]
    fn validations_are_read_and_only_plain_ones_pass_unsigned() {
        assert_eq!(
            read(
                br#"{"d":{"plain_token":"Arq0D5A61EgUu4OxUvOp","event_ts":"1725442341"},"op":13}"#
            ),
            Ok(Payload::Validation {
                plain_token: "Arq0D5A61EgUu4OxUvOp".into(),
                event_ts: "1725442341".into(),
            })
        );
        assert_eq!(
            read(br#"{"d":{"plain_token":"x"},"op":13}"#)
                .unwrap_err()
                .to_string(),
            "invalid `d`: missing field `event_ts`"
        );
        assert!(is_plain_validation("Arq0D5A61EgUu4OxUvOp", "1725442341"));
        assert!(is_plain_validation("38bc73e1-6208_135f", "1"));
        assert!(!is_plain_validation(r#"{"op":0}"#, "1725442341"));
        assert!(!is_plain_validation("token", "17254 42341"));
        assert!(!is_plain_validation("", "1"));
        assert!(!is_plain_validation("token", ""));
    }
}
