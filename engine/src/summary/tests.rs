use super::*;
use crate::channel::Channel;
use crate::ids::AgentId;

const T0: Millis = 1_764_000_000_000;

fn conversation(lines: &[(&str, &str)]) -> (Session, Vec<StoredMessage>) {
    let mut session = Session::new(SessionId(9), CustomerId::new("c-1"), Channel::Wechat, T0);
    session.state = SessionState::Closed;
    session.times.answered = Some(T0 + 1_000);
    let messages = lines
        .iter()
        .enumerate()
        .map(|(idx, (who, body))| StoredMessage {
            session_id: session.id,
            seq: idx as u64 + 1,
            sender: match *who {
                "customer" => Sender::Customer,
                "system" => Sender::System,
                agent => Sender::Agent(AgentId::new(agent)),
            },
            body: body.to_string(),
            client_message_id: None,
            channel: Channel::Wechat,
            at: T0 + idx as i64,
        })
        .collect();
    (session, messages)
}

fn summarize(session: &Session, messages: &[StoredMessage]) -> SessionSummary {
    ExtractiveSummarizer.summarize(session, messages, T0 + 60_000)
}

#[test]
fn a_chinese_delivery_conversation() {
    let (session, messages) = conversation(&[
        ("customer", "你好"),
        (
            "customer",
            "我的订单20231001已经五天了还没发货，物流一直没有更新。",
        ),
        ("system", "{\"type\":\"queued\",\"group\":\"default\"}"),
        ("li.na", "您好，我是李娜。我查一下订单的物流状态。"),
        (
            "li.na",
            "仓库备货延迟，订单明天发货，快递单号会短信通知您。",
        ),
        ("customer", "好的，谢谢，问题解决了。"),
    ]);
    let summary = summarize(&session, &messages);
    assert_eq!(summary.outcome, Outcome::Resolved);
    assert_eq!(summary.topics[0], "delivery", "{:?}", summary.topics);
    assert!(summary.topics.contains(&"order".to_string()));
    assert!(summary.key_sentences.len() <= MAX_KEY_SENTENCES);
    // The customer's statement of the problem leads; greetings never appear.
    assert!(
        summary.key_sentences[0].contains("还没发货"),
        "{:?}",
        summary.key_sentences
    );
    assert!(!summary.key_sentences.iter().any(|s| s == "你好"));
    assert!(!summary.key_sentences.iter().any(|s| s.contains("queued")));
    assert_eq!(summary.summarizer, "extractive-v1");
    assert!(
        summary.headline().ends_with("; resolved]"),
        "{}",
        summary.headline()
    );
}

#[test]
fn outcomes() {
    let check = |lines: &[(&str, &str)], rating: Option<u8>, answered: bool, expected: Outcome| {
        let (mut session, messages) = conversation(lines);
        session.rating = rating;
        if !answered {
            session.times.answered = None;
        }
        assert_eq!(
            summarize(&session, &messages).outcome,
            expected,
            "{lines:?}"
        );
    };
    check(
        &[("customer", "My refund never arrived.")],
        None,
        false,
        Outcome::Abandoned,
    );
    check(
        &[
            ("customer", "My refund never arrived."),
            ("customer", "Any news?"),
        ],
        None,
        true,
        Outcome::Handled,
    );
    check(
        &[
            ("customer", "Payment failed"),
            ("customer", "still not solved"),
        ],
        None,
        true,
        Outcome::Unresolved,
    );
    check(
        &[("customer", "Payment failed"), ("customer", "thanks!")],
        None,
        true,
        Outcome::Resolved,
    );
    check(
        &[("customer", "Payment failed")],
        Some(1),
        true,
        Outcome::Unresolved,
    );
    check(
        &[("customer", "Payment failed")],
        Some(5),
        true,
        Outcome::Resolved,
    );
    check(
        &[("customer", "Payment failed"), ("bob", "Fixed the card.")],
        None,
        true,
        Outcome::Handled,
    );
}

#[test]
fn long_sentences_are_cut_and_empty_conversations_summarize() {
    let long = "退款".repeat(100);
    let (session, messages) = conversation(&[("customer", long.as_str())]);
    let summary = summarize(&session, &messages);
    assert_eq!(summary.key_sentences[0].chars().count(), MAX_SENTENCE_CHARS);
    assert!(summary.key_sentences[0].ends_with('…'));
    assert_eq!(summary.topics, vec!["refund"]);

    let (session, messages) = conversation(&[]);
    let summary = summarize(&session, &messages);
    assert!(summary.key_sentences.is_empty());
    assert_eq!(summary.headline(), "(no messages) [handled]");
}
