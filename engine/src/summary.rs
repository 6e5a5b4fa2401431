//! Auto-summary of a finished conversation: a few key sentences, the topics
//! it was about and how it ended, stored beside the session and shown in the
//! customer's 360° view.
//!
//! [`Summarizer`] is the seam: [`ExtractiveSummarizer`] picks sentences out
//! of the conversation with no model; a model-based one can replace it
//! without the callers changing.

use serde::{Deserialize, Serialize};

use crate::Millis;
use crate::ids::{CustomerId, SessionId};
use crate::message::{Sender, StoredMessage};
use crate::session::{Session, SessionState};

/// Most key sentences in a summary.
pub const MAX_KEY_SENTENCES: usize = 3;
/// Longest key sentence kept, in characters (longer ones are cut with `…`).
pub const MAX_SENTENCE_CHARS: usize = 120;

/// What a summary says about one session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSummary {
    /// The session.
    pub session_id: SessionId,
    /// Whose conversation it was.
    pub customer_id: CustomerId,
    /// The sentences that carry the conversation, in conversation order.
    pub key_sentences: Vec<String>,
    /// Topics detected (`delivery`, `refund`, …), most mentioned first.
    pub topics: Vec<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// Which summarizer wrote it.
    pub summarizer: String,
    /// When it was written.
    pub created_at: Millis,
}

impl SessionSummary {
    /// One line for the 360° timeline: the first key sentence and the topics.
    pub fn headline(&self) -> String {
        let sentence = self
            .key_sentences
            .first()
            .map(String::as_str)
            .unwrap_or("(no messages)");
        match self.topics.is_empty() {
            true => format!("{sentence} [{}]", self.outcome.as_str()),
            false => format!(
                "{sentence} [{}; {}]",
                self.topics.join(", "),
                self.outcome.as_str()
            ),
        }
    }
}

/// How a conversation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The customer said it was solved, or thanked the agent at the end.
    Resolved,
    /// The customer said it was not solved, or rated the conversation 1 or 2.
    Unresolved,
    /// Closed by an agent with no clear signal either way.
    Handled,
    /// The customer left before an agent answered.
    Abandoned,
}

impl Outcome {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Resolved => "resolved",
            Outcome::Unresolved => "unresolved",
            Outcome::Handled => "handled",
            Outcome::Abandoned => "abandoned",
        }
    }
}

/// Writes a summary of a finished session from its record and messages.
pub trait Summarizer: Send + Sync {
    /// Its name, stored with each summary.
    fn name(&self) -> &str;
    /// Summarizes; `messages` are the session's stored rows in `seq` order
    /// (system rows included; a summarizer ignores what it does not use).
    fn summarize(
        &self,
        session: &Session,
        messages: &[StoredMessage],
        now: Millis,
    ) -> SessionSummary;
}

/// A topic and the words that reveal it.
struct Topic {
    name: &'static str,
    keywords: &'static [&'static str],
}

const TOPICS: &[Topic] = &[
    Topic {
        name: "delivery",
        keywords: &[
            "物流", "快递", "发货", "配送", "送达", "签收", "延迟", "delivery", "shipping",
            "shipped", "tracking", "courier", "delay",
        ],
    },
    Topic {
        name: "refund",
        keywords: &["退款", "退钱", "到账", "refund", "money back"],
    },
    Topic {
        name: "return",
        keywords: &["退货", "换货", "寄回", "return", "exchange"],
    },
    Topic {
        name: "payment",
        keywords: &[
            "支付",
            "付款",
            "扣款",
            "银行卡",
            "payment",
            "charged",
            "card",
            "declined",
        ],
    },
    Topic {
        name: "invoice",
        keywords: &["发票", "invoice", "receipt"],
    },
    Topic {
        name: "account",
        keywords: &[
            "密码",
            "登录",
            "账号",
            "验证码",
            "password",
            "login",
            "sign in",
            "account",
        ],
    },
    Topic {
        name: "order",
        keywords: &["订单", "下单", "取消订单", "order"],
    },
    Topic {
        name: "product",
        keywords: &[
            "质量",
            "破损",
            "坏了",
            "保修",
            "damaged",
            "broken",
            "warranty",
            "defective",
        ],
    },
    Topic {
        name: "membership",
        keywords: &[
            "会员",
            "积分",
            "优惠券",
            "vip",
            "points",
            "coupon",
            "membership",
        ],
    },
    Topic {
        name: "complaint",
        keywords: &[
            "投诉",
            "不满意",
            "太慢",
            "complaint",
            "unacceptable",
            "terrible",
        ],
    },
];

const RESOLVED_WORDS: &[&str] = &[
    "解决了",
    "好了",
    "谢谢",
    "感谢",
    "可以了",
    "没问题",
    "thank",
    "thanks",
    "solved",
    "resolved",
    "works now",
    "great",
];
const UNRESOLVED_WORDS: &[&str] = &[
    "没解决",
    "还是不行",
    "没用",
    "不行",
    "not solved",
    "still not",
    "doesn't work",
    "does not work",
    "not working",
    "useless",
];
/// Sentences that carry nothing: greetings and pleasantries.
const FILLER: &[&str] = &[
    "你好",
    "您好",
    "在吗",
    "谢谢",
    "好的",
    "嗯",
    "hello",
    "hi",
    "thanks",
    "thank you",
    "ok",
    "okay",
    "bye",
];

/// Picks key sentences by how many of the conversation's frequent words they
/// hold, favouring the customer's first statement of the problem.
#[derive(Debug, Default, Clone, Copy)]
pub struct ExtractiveSummarizer;

impl Summarizer for ExtractiveSummarizer {
    fn name(&self) -> &str {
        "extractive-v1"
    }

    fn summarize(
        &self,
        session: &Session,
        messages: &[StoredMessage],
        now: Millis,
    ) -> SessionSummary {
        let spoken: Vec<&StoredMessage> = messages
            .iter()
            .filter(|message| !matches!(message.sender, Sender::System))
            .collect();
        let sentences: Vec<(usize, bool, String)> = spoken
            .iter()
            .flat_map(|message| {
                let from_customer = message.sender == Sender::Customer;
                split_sentences(&message.body)
                    .into_iter()
                    .map(move |s| (from_customer, s))
            })
            .enumerate()
            .map(|(idx, (from_customer, sentence))| (idx, from_customer, sentence))
            .collect();
        let all_text: String = spoken
            .iter()
            .map(|m| m.body.to_lowercase())
            .collect::<Vec<_>>()
            .join("\n");
        let topics = detect_topics(&all_text);
        SessionSummary {
            session_id: session.id,
            customer_id: session.customer_id.clone(),
            key_sentences: key_sentences(&sentences, &topics),
            topics: topics.iter().map(|(name, _)| name.to_string()).collect(),
            outcome: outcome(session, &spoken),
            summarizer: self.name().to_owned(),
            created_at: now,
        }
    }
}

/// Splits at sentence ends (Chinese and Western) and line breaks; drops
/// fillers and fragments shorter than 4 characters.
fn split_sentences(text: &str) -> Vec<String> {
    let mut sentences = Vec::new();
    let mut current = String::new();
    let mut push = |current: &mut String| {
        let sentence = current.trim().to_owned();
        current.clear();
        let bare: String = sentence
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == ' ')
            .collect::<String>()
            .to_lowercase();
        if sentence.chars().count() >= 4 && !FILLER.contains(&bare.trim()) {
            sentences.push(sentence);
        }
    };
    for c in text.chars() {
        current.push(c);
        if matches!(c, '。' | '！' | '？' | '；' | '!' | '?' | ';' | '\n' | '.') {
            push(&mut current);
        }
    }
    push(&mut current);
    sentences
}

/// Topics with a keyword in the text, by number of mentions.
fn detect_topics(text: &str) -> Vec<(&'static str, usize)> {
    let mut found: Vec<(&'static str, usize)> = TOPICS
        .iter()
        .map(|topic| {
            (
                topic.name,
                topic.keywords.iter().map(|k| text.matches(k).count()).sum(),
            )
        })
        .filter(|(_, mentions)| *mentions > 0)
        .collect();
    found.sort_by_key(|(_, mentions)| std::cmp::Reverse(*mentions));
    found.truncate(3);
    found
}

/// Words of a sentence for scoring: Chinese character pairs and Latin words
/// of 3 letters or more, lowercased.
fn words(sentence: &str) -> Vec<String> {
    let lower = sentence.to_lowercase();
    let mut words = Vec::new();
    let cjk: Vec<char> = lower
        .chars()
        .filter(|c| !c.is_ascii() && c.is_alphanumeric())
        .collect();
    words.extend(cjk.windows(2).map(|w| w.iter().collect::<String>()));
    words.extend(
        lower
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|word| word.len() >= 3)
            .map(str::to_owned),
    );
    words
}

fn key_sentences(sentences: &[(usize, bool, String)], topics: &[(&str, usize)]) -> Vec<String> {
    let mut frequency: std::collections::HashMap<String, f64> = std::collections::HashMap::new();
    for (_, _, sentence) in sentences {
        for word in words(sentence) {
            *frequency.entry(word).or_default() += 1.0;
        }
    }
    let topic_words: Vec<&str> = TOPICS
        .iter()
        .filter(|topic| topics.iter().any(|(name, _)| *name == topic.name))
        .flat_map(|topic| topic.keywords.iter().copied())
        .collect();
    let first_customer = sentences
        .iter()
        .find(|(_, from_customer, _)| *from_customer)
        .map(|s| s.0);
    let mut scored: Vec<(f64, usize, &String)> = sentences
        .iter()
        .map(|(idx, _, sentence)| {
            let words = words(sentence);
            let weight: f64 = words.iter().map(|word| frequency[word]).sum::<f64>()
                / (words.len().max(1) as f64).sqrt();
            let lower = sentence.to_lowercase();
            let topical = topic_words.iter().filter(|k| lower.contains(*k)).count() as f64;
            let opening = if Some(*idx) == first_customer {
                2.0
            } else {
                0.0
            };
            (weight + topical + opening, *idx, sentence)
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.truncate(MAX_KEY_SENTENCES);
    scored.sort_by_key(|(_, idx, _)| *idx);
    scored
        .into_iter()
        .map(|(_, _, sentence)| shorten(sentence))
        .collect()
}

fn shorten(sentence: &str) -> String {
    match sentence.chars().count() > MAX_SENTENCE_CHARS {
        true => sentence
            .chars()
            .take(MAX_SENTENCE_CHARS - 1)
            .chain(['…'])
            .collect(),
        false => sentence.to_owned(),
    }
}

fn outcome(session: &Session, spoken: &[&StoredMessage]) -> Outcome {
    if session.state == SessionState::Abandoned || session.times.answered.is_none() {
        return Outcome::Abandoned;
    }
    if session.rating.is_some_and(|score| score <= 2) {
        return Outcome::Unresolved;
    }
    // The customer's last two messages say how they left.
    let closing: Vec<String> = spoken
        .iter()
        .rev()
        .filter(|message| message.sender == Sender::Customer)
        .take(2)
        .map(|message| message.body.to_lowercase())
        .collect();
    let says = |words: &[&str]| {
        closing
            .iter()
            .any(|text| words.iter().any(|w| text.contains(w)))
    };
    if says(UNRESOLVED_WORDS) {
        Outcome::Unresolved
    } else if says(RESOLVED_WORDS) || session.rating.is_some_and(|score| score >= 4) {
        Outcome::Resolved
    } else {
        Outcome::Handled
    }
}

#[cfg(test)]
mod tests;
