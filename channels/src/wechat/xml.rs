//! The XML WeChat pushes, and what each push becomes.
//!
//! Every push is one flat `<xml>` element whose children hold text, most
//! of it in CDATA:
//!
//! ```xml
//! <xml>
//!   <ToUserName><![CDATA[gh_7f083739789a]]></ToUserName>
//!   <FromUserName><![CDATA[oia2TjjewbmiOUlr6X-1crbLOvLw]]></FromUserName>
//!   <CreateTime>1348831860</CreateTime>
//!   <MsgType><![CDATA[text]]></MsgType>
//!   <Content><![CDATA[this is a test]]></Content>
//!   <MsgId>1234567890123456</MsgId>
//! </xml>
//! ```
//!
//! [`parse`] reads the children's text into [`Fields`] (a child's own
//! children, which a few events carry, are skipped); [`to_push`] turns the
//! fields into a customer message or a notice. No DTD is read and no
//! entity but XML's five and character references is expanded.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use quick_xml::events::Event;
use quick_xml::reader::Reader;

use crate::adapter::{InboundMessage, Notice};
use crate::error::ChannelError;
use crate::limits::{self, InboundLimits};

/// The children of a push's `<xml>` element, by name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fields(BTreeMap<String, String>);

impl Fields {
    /// The text of element `name`, when the push has it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The text of element `name`; an error naming it when it is missing.
    pub fn required(&self, name: &str) -> Result<&str, ChannelError> {
        self.get(name)
            .ok_or_else(|| ChannelError::malformed(name, "is missing"))
    }
}

/// Reads a push's body; errors name the element at fault (`body` for
/// what is not XML at all).
pub fn parse(body: &[u8]) -> Result<Fields, ChannelError> {
    let text =
        std::str::from_utf8(body).map_err(|_| ChannelError::malformed("body", "is not UTF-8"))?;
    let not_xml =
        |err: &dyn std::fmt::Display| ChannelError::malformed("body", format!("is not XML: {err}"));
    let mut reader = Reader::from_str(text);
    let mut fields = BTreeMap::new();
    // Where the reader is: outside `<xml>`, inside it, in a child (its
    // name and text so far), or deeper (how many levels below the child).
    let mut in_root = false;
    let mut done = false;
    let mut child: Option<(String, String)> = None;
    let mut depth_below_child = 0usize;
    loop {
        let event = reader.read_event().map_err(|err| not_xml(&err))?;
        match event {
            Event::Eof if done => return Ok(Fields(fields)),
            Event::Eof => {
                return Err(ChannelError::malformed(
                    child
                        .map(|(name, _)| name)
                        .filter(|name| !name.is_empty())
                        .unwrap_or_else(|| "body".to_string()),
                    "the body ends before the element is closed",
                ));
            }
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) | Event::DocType(_) => {}
            Event::Start(start) if !in_root => {
                check_root(&start, done)?;
                in_root = true;
            }
            Event::Empty(start) if !in_root => {
                check_root(&start, done)?;
                done = true;
            }
            Event::Start(start) => match &child {
                None => child = Some((element_name(&start.name())?, String::new())),
                Some(_) => depth_below_child += 1,
            },
            Event::Empty(start) => {
                if child.is_none() {
                    insert(&mut fields, element_name(&start.name())?, String::new())?;
                }
            }
            Event::End(_) if depth_below_child > 0 => depth_below_child -= 1,
            Event::End(_) => match child.take() {
                Some((name, text)) => insert(&mut fields, name, text)?,
                None => {
                    in_root = false;
                    done = true;
                }
            },
            Event::Text(text) => {
                let text = text.xml_content().map_err(|err| not_xml(&err))?;
                match &mut child {
                    Some((_, value)) if depth_below_child == 0 => value.push_str(&text),
                    Some(_) => {}
                    None if text.trim().is_empty() => {}
                    None => {
                        return Err(ChannelError::malformed(
                            "body",
                            "has text outside the elements of <xml>",
                        ));
                    }
                }
            }
            Event::CData(cdata) => {
                let text = cdata.decode().map_err(|err| not_xml(&err))?;
                match &mut child {
                    Some((_, value)) if depth_below_child == 0 => value.push_str(&text),
                    Some(_) => {}
                    None => {
                        return Err(ChannelError::malformed(
                            "body",
                            "has text outside the elements of <xml>",
                        ));
                    }
                }
            }
            Event::GeneralRef(reference) => {
                let name = reference.decode().map_err(|err| not_xml(&err))?;
                let field = child
                    .as_ref()
                    .map_or("body".to_string(), |(name, _)| name.clone());
                let resolved = match reference.resolve_char_ref() {
                    Ok(Some(char)) => char.to_string(),
                    Ok(None) => quick_xml::escape::resolve_predefined_entity(&name)
                        .ok_or_else(|| {
                            ChannelError::malformed(
                                field.clone(),
                                format!("uses the unknown entity `&{name};`"),
                            )
                        })?
                        .to_string(),
                    Err(err) => return Err(ChannelError::malformed(field, err.to_string())),
                };
                match &mut child {
                    Some((_, value)) if depth_below_child == 0 => value.push_str(&resolved),
                    Some(_) => {}
                    None => {
                        return Err(ChannelError::malformed(
                            "body",
                            "has text outside the elements of <xml>",
                        ));
                    }
                }
            }
        }
    }
}

/// `start` may open the document: it is `<xml>`, and the first element.
fn check_root(start: &quick_xml::events::BytesStart<'_>, done: bool) -> Result<(), ChannelError> {
    if done || start.name().as_ref() != b"xml" {
        return Err(ChannelError::malformed("body", "must be one <xml> element"));
    }
    Ok(())
}

fn element_name(name: &quick_xml::name::QName<'_>) -> Result<String, ChannelError> {
    String::from_utf8(name.as_ref().to_vec())
        .map_err(|_| ChannelError::malformed("body", "an element's name is not UTF-8"))
}

fn insert(
    fields: &mut BTreeMap<String, String>,
    name: String,
    text: String,
) -> Result<(), ChannelError> {
    if fields.contains_key(&name) {
        return Err(ChannelError::malformed(name, "is given twice"));
    }
    fields.insert(name, text);
    Ok(())
}

/// A flat `<xml>` element of `fields`, each text in CDATA: what WeChat
/// sends, for tests and for safe mode's envelope.
pub fn to_xml(fields: &[(&str, &str)]) -> String {
    let mut xml = String::from("<xml>");
    for (name, text) in fields {
        // `]]>` cannot be inside CDATA: it ends one section and starts another.
        let text = text.replace("]]>", "]]]]><![CDATA[>");
        xml.push_str(&format!("<{name}><![CDATA[{text}]]></{name}>"));
    }
    xml.push_str("</xml>");
    xml
}

/// What one push is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Push {
    /// A customer's message (or a menu click, which the agent sees as one).
    Message(InboundMessage),
    /// An event without a message: a follow, an unfollow, a link opened
    /// from the menu.
    Notice(Notice),
}

/// What `fields` hold; errors name the element. `ToUserName` (the
/// account's original id, `gh_…`) must be there but is not compared with
/// anything: the signature already says the push is for this account.
pub fn to_push(fields: &Fields, limits: &InboundLimits) -> Result<Push, ChannelError> {
    fields.required("ToUserName")?;
    let from = fields.required("FromUserName")?;
    limits::check_external_id("FromUserName", from)?;
    let create_time = fields.required("CreateTime")?;
    let sent_at = create_time
        .trim()
        .parse::<i64>()
        .ok()
        .and_then(|secs| DateTime::<Utc>::from_timestamp(secs, 0))
        .ok_or_else(|| ChannelError::malformed("CreateTime", "must be unix seconds"))?;
    let msg_type = fields.required("MsgType")?;
    // `id_field`, `text_field`: the elements an error names.
    let message = |id: String, id_field: &str, text: String, text_field: &str| {
        limits::check_message_id(id_field, &id)?;
        limits.check_text(text_field, &text)?;
        Ok(Push::Message(InboundMessage {
            external_id: from.to_string(),
            text,
            platform_message_id: id,
            display_name: None,
            sent_at,
            reply_context: None,
        }))
    };
    if msg_type == "event" {
        let event = fields.required("Event")?;
        if event == "CLICK" {
            let key = fields.required("EventKey")?;
            // Events have no MsgId: the sender and the time make one, so
            // WeChat's retries of this push are stored once.
            let id = format!("{from}-{}-click", create_time.trim());
            return message(id, "FromUserName", format!("[menu] {key}"), "EventKey");
        }
        return Ok(Push::Notice(Notice {
            external_id: from.to_string(),
            what: event.to_string(),
        }));
    }
    let id = fields.required("MsgId")?.trim().to_string();
    let (text, field) = match msg_type {
        "text" => (fields.required("Content")?.to_string(), "Content"),
        "image" => (format!("[image] {}", fields.required("PicUrl")?), "PicUrl"),
        "voice" => {
            let media_id = fields.required("MediaId")?;
            let text = match fields.get("Recognition").map(str::trim) {
                Some(recognition) if !recognition.is_empty() => {
                    format!("[voice] {recognition}")
                }
                _ => match fields.get("Format") {
                    Some(format) => format!("[voice] media {media_id} ({format})"),
                    None => format!("[voice] media {media_id}"),
                },
            };
            (text, "Recognition")
        }
        "video" | "shortvideo" => {
            let label = if msg_type == "video" {
                "video"
            } else {
                "short video"
            };
            (
                format!("[{label}] media {}", fields.required("MediaId")?),
                "MediaId",
            )
        }
        "location" => {
            let latitude = fields.required("Location_X")?;
            let longitude = fields.required("Location_Y")?;
            let text = match fields.get("Label").map(str::trim) {
                Some(label) if !label.is_empty() => {
                    format!("[location] {label} ({latitude}, {longitude})")
                }
                _ => format!("[location] ({latitude}, {longitude})"),
            };
            (text, "Label")
        }
        "link" => {
            let url = fields.required("Url")?;
            let text = match fields.get("Title").map(str::trim) {
                Some(title) if !title.is_empty() => format!("[link] {title} {url}"),
                _ => format!("[link] {url}"),
            };
            (text, "Title")
        }
        // A kind WeChat added later (a mini program card, a file): the
        // agent learns that the customer sent something rather than nothing.
        other => (
            format!("[{other}] (a message switchboard cannot show)"),
            "MsgType",
        ),
    };
    message(id, "MsgId", text, field)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: InboundLimits = InboundLimits { max_text_chars: 60 };
    const OPENID: &str = "oia2TjjewbmiOUlr6X-1crbLOvLw";

    fn push(kind: &str, rest: &[(&str, &str)]) -> String {
        let mut fields = vec![
            ("ToUserName", "gh_7f083739789a"),
            ("FromUserName", OPENID),
            ("CreateTime", "1348831860"),
            ("MsgType", kind),
        ];
        fields.extend_from_slice(rest);
        to_xml(&fields)
    }

    fn message(id: &str, text: &str) -> Push {
        Push::Message(InboundMessage {
            external_id: OPENID.into(),
            text: text.into(),
            platform_message_id: id.into(),
            display_name: None,
            sent_at: DateTime::from_timestamp(1_348_831_860, 0).unwrap(),
            reply_context: None,
        })
    }

    fn notice(what: &str) -> Push {
        Push::Notice(Notice {
            external_id: OPENID.into(),
            what: what.into(),
        })
    }

    fn check(body: &str, expected: Result<Push, (&str, &str)>) {
        let got = parse(body.as_bytes()).and_then(|fields| to_push(&fields, &LIMITS));
        match (got, expected) {
            (Ok(got), Ok(expected)) => assert_eq!(got, expected, "{body}"),
            (Err(err), Err((field, message))) => {
                assert_eq!(err.field(), Some(field), "{body}: {err}");
                assert_eq!(err.to_string(), message, "{body}");
            }
            (got, expected) => panic!("{body}: got {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn each_message_type_becomes_a_readable_message() {
        check(
            &push("text", &[("Content", "我的订单"), ("MsgId", "1001")]),
            Ok(message("1001", "我的订单")),
        );
        check(
            &push(
                "image",
                &[
                    ("PicUrl", "https://mmbiz.qpic.cn/x.jpg"),
                    ("MediaId", "m1"),
                    ("MsgId", "1002"),
                ],
            ),
            Ok(message("1002", "[image] https://mmbiz.qpic.cn/x.jpg")),
        );
        check(
            &push(
                "voice",
                &[
                    ("MediaId", "m2"),
                    ("Format", "amr"),
                    ("Recognition", "腾讯微信团队"),
                    ("MsgId", "1003"),
                ],
            ),
            Ok(message("1003", "[voice] 腾讯微信团队")),
        );
        check(
            &push(
                "voice",
                &[("MediaId", "m2"), ("Format", "amr"), ("MsgId", "1004")],
            ),
            Ok(message("1004", "[voice] media m2 (amr)")),
        );
        check(
            &push(
                "video",
                &[("MediaId", "m3"), ("ThumbMediaId", "t3"), ("MsgId", "1005")],
            ),
            Ok(message("1005", "[video] media m3")),
        );
        check(
            &push(
                "shortvideo",
                &[("MediaId", "m4"), ("ThumbMediaId", "t4"), ("MsgId", "1006")],
            ),
            Ok(message("1006", "[short video] media m4")),
        );
        check(
            &push(
                "location",
                &[
                    ("Location_X", "23.134521"),
                    ("Location_Y", "113.358803"),
                    ("Scale", "20"),
                    ("Label", "广州市天河区"),
                    ("MsgId", "1007"),
                ],
            ),
            Ok(message(
                "1007",
                "[location] 广州市天河区 (23.134521, 113.358803)",
            )),
        );
        check(
            &push(
                "link",
                &[
                    ("Title", "Order 42"),
                    ("Description", "my order"),
                    ("Url", "https://shop.example/o/42"),
                    ("MsgId", "1008"),
                ],
            ),
            Ok(message("1008", "[link] Order 42 https://shop.example/o/42")),
        );
        check(
            &push("miniprogrampage", &[("Title", "x"), ("MsgId", "1009")]),
            Ok(message(
                "1009",
                "[miniprogrampage] (a message switchboard cannot show)",
            )),
        );
    }

    #[test]
    fn events_become_notices_and_clicks_become_messages() {
        check(
            &push("event", &[("Event", "subscribe")]),
            Ok(notice("subscribe")),
        );
        check(
            &push("event", &[("Event", "unsubscribe")]),
            Ok(notice("unsubscribe")),
        );
        check(
            &push(
                "event",
                &[("Event", "VIEW"), ("EventKey", "https://shop.example")],
            ),
            Ok(notice("VIEW")),
        );
        check(
            &push("event", &[("Event", "CLICK"), ("EventKey", "ORDER_STATUS")]),
            Ok(message(
                &format!("{OPENID}-1348831860-click"),
                "[menu] ORDER_STATUS",
            )),
        );
    }

    #[test]
    fn bad_pushes_name_the_element_at_fault() {
        check(
            "<xml><ToUserName>",
            Err((
                "ToUserName",
                "invalid `ToUserName`: the body ends before the element is closed",
            )),
        );
        check(
            "<xml><a></b></xml>",
            Err((
                "body",
                "invalid `body`: is not XML: ill-formed document: expected `</a>`, but `</b>` was found",
            )),
        );
        check(
            "<json/>",
            Err(("body", "invalid `body`: must be one <xml> element")),
        );
        check(
            "<xml></xml><xml></xml>",
            Err(("body", "invalid `body`: must be one <xml> element")),
        );
        check(
            "<xml>loose</xml>",
            Err((
                "body",
                "invalid `body`: has text outside the elements of <xml>",
            )),
        );
        check(
            &push("text", &[("MsgId", "1")]),
            Err(("Content", "invalid `Content`: is missing")),
        );
        check(
            &push("text", &[("Content", "hi")]),
            Err(("MsgId", "invalid `MsgId`: is missing")),
        );
        check(
            &push("text", &[("Content", "hi"), ("MsgId", "1"), ("MsgId", "2")]),
            Err(("MsgId", "invalid `MsgId`: is given twice")),
        );
        check(
            &push("text", &[("Content", "  "), ("MsgId", "1")]),
            Err(("Content", "invalid `Content`: must not be empty")),
        );
        check(
            &push("text", &[("Content", &"长".repeat(61)), ("MsgId", "1")]),
            Err((
                "Content",
                "field `Content`: 61 characters is over the limit of 60 (limits.max_body_chars)",
            )),
        );
        check(
            &push(
                "link",
                &[
                    ("Title", &"t".repeat(40)),
                    ("Url", "https://x.example/"),
                    ("MsgId", "1"),
                ],
            ),
            Err((
                "Title",
                "field `Title`: 66 characters is over the limit of 60 (limits.max_body_chars)",
            )),
        );
        check(
            &push("event", &[("Event", "CLICK")]),
            Err(("EventKey", "invalid `EventKey`: is missing")),
        );
        check(
            &to_xml(&[("ToUserName", "gh"), ("FromUserName", OPENID)]),
            Err(("CreateTime", "invalid `CreateTime`: is missing")),
        );
        check(
            &push("text", &[("Content", "hi"), ("MsgId", "1")]).replace("1348831860", "yesterday"),
            Err(("CreateTime", "invalid `CreateTime`: must be unix seconds")),
        );
        check(
            &push("text", &[("Content", "x &ent; y"), ("MsgId", "1")])
                .replace("<![CDATA[x &ent; y]]>", "x &ent; y"),
            Err((
                "Content",
                "invalid `Content`: uses the unknown entity `&ent;`",
            )),
        );
    }

    #[test]
    fn text_outside_cdata_is_unescaped_and_nested_elements_are_skipped() {
        let body = "<?xml version=\"1.0\"?>\n<xml>\n  <ToUserName>gh_1</ToUserName>\n  \
                    <FromUserName>o&amp;1&#x41;</FromUserName>\n  <CreateTime>5</CreateTime>\n  \
                    <ScanCodeInfo><ScanType>qrcode</ScanType><ScanResult>1</ScanResult></ScanCodeInfo>\n  \
                    <Content><![CDATA[a]]]]><![CDATA[>b]]></Content><Empty/>\n</xml>\n";
        let fields = parse(body.as_bytes()).unwrap();
        assert_eq!(fields.get("FromUserName"), Some("o&1A"));
        assert_eq!(fields.get("CreateTime"), Some("5"));
        assert_eq!(fields.get("ScanCodeInfo"), Some(""));
        assert_eq!(fields.get("ScanType"), None);
        assert_eq!(fields.get("Content"), Some("a]]>b"));
        assert_eq!(fields.get("Empty"), Some(""));
    }
}
