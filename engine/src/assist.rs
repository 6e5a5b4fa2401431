//! Reply templates: one script library for every channel, and the
//! suggestions an agent gets while typing or reading the customer's message.
//!
//! A template has trigger phrases; the text it is matched against (what the
//! agent types, or the customer's last message) ranks it by the best of:
//! - a trigger inside the text ("订单延迟" in "客户说订单延迟了"), longer triggers first;
//! - the text as the start of a trigger (an agent who has typed "订单延" so far);
//! - otherwise the overlap of character pairs between text and trigger or
//!   title (Dice coefficient), which tolerates other wording and typos.
//!
//! Bodies may hold variables (`{{customer.name}}`) filled from the customer,
//! the agent and the session; [`VARIABLES`] lists them.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::error::EngineError;
use crate::ids::TemplateId;
use crate::kb::{MAX_TAG_CHARS, check_id, check_language};
use crate::{Millis, text};

/// The variables a body may use.
pub const VARIABLES: [&str; 6] = [
    "customer.name",
    "customer.tier",
    "customer.id",
    "agent.name",
    "session.id",
    "session.channel",
];
/// Longest body, in characters.
pub const MAX_BODY_CHARS: usize = 4_000;
/// Most triggers on one template.
pub const MAX_TRIGGERS: usize = 20;
/// Shortest text that is matched as the start of a trigger.
const MIN_PREFIX_CHARS: usize = 2;
/// Below this character-pair overlap a template is not suggested.
const MIN_SIMILARITY: f64 = 0.3;

/// A reply template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyTemplate {
    /// Id: lowercase letters, digits and `-`.
    pub id: TemplateId,
    /// BCP 47 language.
    pub language: String,
    /// What the agent sees in the list.
    pub title: String,
    /// The reply, with `{{variables}}`.
    pub body: String,
    /// Phrases that make it the answer.
    #[serde(default)]
    pub triggers: Vec<String>,
    /// When it last changed.
    #[serde(default)]
    pub updated_at: Millis,
}

impl ReplyTemplate {
    /// Checks every field; an unknown variable in the body is an error naming it.
    pub fn validated(mut self) -> Result<ReplyTemplate, EngineError> {
        check_id("id", self.id.as_str())?;
        check_language(&self.language)?;
        self.title = text::required("title", &self.title, crate::kb::MAX_TITLE_CHARS)?;
        text::required("body", &self.body, MAX_BODY_CHARS)?;
        self.triggers = text::tags("triggers", self.triggers, MAX_TRIGGERS, MAX_TAG_CHARS)?;
        for name in variables(&self.body) {
            if !VARIABLES.contains(&name) {
                return Err(EngineError::Invalid {
                    field: "body",
                    reason: format!(
                        "unknown variable `{{{{{name}}}}}`; known: {}",
                        VARIABLES.join(", ")
                    ),
                });
            }
        }
        Ok(self)
    }
}

/// Values for the variables; a variable with no value fills as empty.
pub type TemplateVars = BTreeMap<&'static str, String>;

/// A template ranked for some text, with its body filled.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suggestion {
    /// The template.
    pub template_id: TemplateId,
    /// Its title.
    pub title: String,
    /// The body with every variable filled.
    pub text: String,
    /// How well it matched, 0 to about 1.2; only comparable within one call.
    pub score: f64,
    /// The trigger that matched, if one did.
    pub trigger: Option<String>,
    /// Variables the body uses that had no value.
    pub missing: Vec<String>,
}

/// The `{{names}}` a body uses, in order.
pub fn variables(body: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = body;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        names.push(after[..end].trim());
        rest = &after[end + 2..];
    }
    names
}

/// `body` with each `{{name}}` replaced by its value; returns the names that had none.
pub fn fill(body: &str, vars: &TemplateVars) -> (String, Vec<String>) {
    let mut filled = String::with_capacity(body.len());
    let mut missing = Vec::new();
    let mut rest = body;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        filled.push_str(&rest[..start]);
        let name = after[..end].trim();
        match vars.get(name).filter(|value| !value.is_empty()) {
            Some(value) => filled.push_str(value),
            None => missing.push(name.to_owned()),
        }
        rest = &after[end + 2..];
    }
    filled.push_str(rest);
    (filled, missing)
}

/// The best `limit` templates for `input`, best first (ties by id).
pub fn suggest(
    templates: &[ReplyTemplate],
    input: &str,
    vars: &TemplateVars,
    limit: usize,
) -> Vec<Suggestion> {
    let input = normalize(input);
    if input.is_empty() {
        return Vec::new();
    }
    let input_pairs = pairs(&input);
    let mut ranked: Vec<(f64, Option<String>, &ReplyTemplate)> = templates
        .iter()
        .filter_map(|template| {
            let (score, trigger) = score(template, &input, &input_pairs);
            (score > 0.0).then_some((score, trigger, template))
        })
        .collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.2.id.cmp(&b.2.id)));
    ranked
        .into_iter()
        .take(limit)
        .map(|(score, trigger, template)| {
            let (text, missing) = fill(&template.body, vars);
            Suggestion {
                template_id: template.id.clone(),
                title: template.title.clone(),
                text,
                score,
                trigger,
                missing,
            }
        })
        .collect()
}

fn score(
    template: &ReplyTemplate,
    input: &str,
    input_pairs: &BTreeSet<(char, char)>,
) -> (f64, Option<String>) {
    let mut best: (f64, Option<String>) = (0.0, None);
    let mut consider = |score: f64, trigger: Option<&String>| {
        if score > best.0 {
            best = (score, trigger.cloned());
        }
    };
    let input_chars = input.chars().count();
    for trigger in &template.triggers {
        let normalized = normalize(trigger);
        if normalized.is_empty() {
            continue;
        }
        let trigger_chars = normalized.chars().count();
        if input.contains(&normalized) {
            // A longer trigger is a more specific match.
            consider(1.0 + (trigger_chars.min(20) as f64) / 100.0, Some(trigger));
        } else if input_chars >= MIN_PREFIX_CHARS && normalized.starts_with(input) {
            consider(
                0.8 * input_chars as f64 / trigger_chars as f64 + 0.1,
                Some(trigger),
            );
        } else {
            let similarity = dice(input_pairs, &pairs(&normalized));
            if similarity >= MIN_SIMILARITY {
                consider(0.7 * similarity, Some(trigger));
            }
        }
    }
    let similarity = dice(input_pairs, &pairs(&normalize(&template.title)));
    if similarity >= MIN_SIMILARITY {
        consider(0.6 * similarity, None);
    }
    best
}

/// Lowercase, without whitespace or punctuation, so that "订单 延迟!" matches "订单延迟".
fn normalize(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Adjacent character pairs; a one-character text is its own pair.
fn pairs(text: &str) -> BTreeSet<(char, char)> {
    let chars: Vec<char> = text.chars().collect();
    match chars.len() {
        0 => BTreeSet::new(),
        1 => BTreeSet::from([(chars[0], chars[0])]),
        _ => chars.windows(2).map(|w| (w[0], w[1])).collect(),
    }
}

fn dice(a: &BTreeSet<(char, char)>, b: &BTreeSet<(char, char)>) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let shared = a.intersection(b).count();
    2.0 * shared as f64 / (a.len() + b.len()) as f64
}

#[cfg(test)]
mod tests;
