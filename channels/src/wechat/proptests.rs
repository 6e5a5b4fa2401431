//! Property tests of what reads WeChat's requests: the XML parser, safe
//! mode and `receive` never panic on any input, refuse with a clear error,
//! and what switchboard writes (XML, ciphertext) reads back the same.

use std::collections::BTreeMap;

use chrono::DateTime;
use engine::channel::Channel;
use engine::secret::Secret;
use proptest::prelude::*;

use crate::adapter::{ChannelAccount, ChannelAdapter, InboundRequest};
use crate::limits::InboundLimits;
use crate::wechat::crypto::{self, SafeMode};
use crate::wechat::{WechatAdapter, WechatSettings, xml};

const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const APP_ID: &str = "wxb11529c136998cb6";
const TOKEN: &str = "pamtest";
const NOW: i64 = 1_700_000_000;

fn adapter(safe_mode: bool) -> WechatAdapter {
    WechatAdapter::new(
        ChannelAccount {
            kind: "wechat".into(),
            name: "wx".into(),
            channel: Channel::Wechat,
        },
        Secret::from("app-secret"),
        WechatSettings {
            app_id: APP_ID.into(),
            token: Secret::from(TOKEN),
            encoding_aes_key: safe_mode.then(|| Secret::from(KEY)),
            ..WechatSettings::default()
        },
        InboundLimits {
            max_text_chars: 4000,
        },
        "",
    )
    .unwrap()
}

fn request(method: &str, query: String, body: Vec<u8>) -> InboundRequest {
    InboundRequest {
        method: method.into(),
        query,
        headers: Vec::new(),
        body,
        received_at: DateTime::from_timestamp(NOW, 0).unwrap(),
    }
}

/// A plain push's query, signed now.
fn signed_query() -> String {
    let t = NOW.to_string();
    let signature = crypto::signature(&[TOKEN, &t, "42"]);
    format!("signature={signature}&timestamp={t}&nonce=42")
}

proptest! {
    #[test]
    fn any_body_parses_or_names_what_is_wrong(body in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Err(err) = xml::parse(&body) {
            prop_assert_eq!(err.status(), 400, "{}", err);
            prop_assert!(err.field().is_some_and(|field| !field.is_empty()), "{}", err);
        }
    }

    #[test]
    fn any_xml_like_body_parses_or_names_what_is_wrong(
        parts in prop::collection::vec(prop::sample::select(vec![
            "<xml>", "</xml>", "<a>", "</a>", "<b/>", "<![CDATA[x]]>", "]]>", "&amp;",
            "&#x41;", "&nope;", "text", " ", "<?xml version=\"1.0\"?>", "<!-- c -->", "<",
        ]), 0..12),
    ) {
        let body = parts.concat();
        if let Err(err) = xml::parse(body.as_bytes()) {
            prop_assert_eq!(err.status(), 400, "{}", err);
            prop_assert!(err.field().is_some_and(|field| !field.is_empty()), "{}", err);
        }
    }

    #[test]
    fn fields_written_as_xml_read_back_the_same(
        fields in prop::collection::btree_map("[A-Za-z_][A-Za-z0-9_]{0,12}", "\\PC{0,40}", 0..8),
    ) {
        let list: Vec<(&str, &str)> = fields
            .iter()
            .map(|(name, text)| (name.as_str(), text.as_str()))
            .collect();
        let parsed = xml::parse(xml::to_xml(&list).as_bytes()).unwrap();
        let read: BTreeMap<String, String> = fields
            .keys()
            .map(|name| (name.clone(), parsed.get(name).unwrap_or("<missing>").to_string()))
            .collect();
        prop_assert_eq!(read, fields);
    }

    #[test]
    fn any_message_is_encrypted_and_decrypted_back(message in "\\PC{0,300}") {
        let safe_mode = SafeMode::new(KEY, APP_ID).unwrap();
        prop_assert_eq!(safe_mode.decrypt(&safe_mode.encrypt(&message)).unwrap(), message);
    }

    #[test]
    fn any_ciphertext_decrypts_or_is_refused_without_panicking(encrypted in "[A-Za-z0-9+/=]{0,200}") {
        let _ = SafeMode::new(KEY, APP_ID).unwrap().decrypt(&encrypted);
    }

    #[test]
    fn any_request_is_read_or_refused_without_panicking(
        method in prop::sample::select(vec!["GET", "POST", "HEAD"]),
        query in "[a-z_=&%0-9A-F+]{0,80}",
        body in prop::collection::vec(any::<u8>(), 0..128),
        safe_mode in any::<bool>(),
    ) {
        let _ = adapter(safe_mode).receive(&request(method, query, body));
    }

    #[test]
    fn a_signed_text_push_round_trips(content in "\\PC{0,80}[a-z]", msg_id in "[0-9]{1,20}") {
        let body = xml::to_xml(&[
            ("ToUserName", "gh_1"),
            ("FromUserName", "o-customer"),
            ("CreateTime", "1699999999"),
            ("MsgType", "text"),
            ("Content", &content),
            ("MsgId", &msg_id),
        ]);
        let received = adapter(false)
            .receive(&request("POST", signed_query(), body.into_bytes()))
            .unwrap();
        prop_assert_eq!(received.messages.len(), 1);
        prop_assert_eq!(&received.messages[0].text, &content);
        prop_assert_eq!(&received.messages[0].platform_message_id, &msg_id);
        prop_assert_eq!(&received.messages[0].external_id, "o-customer");
    }
}
