//! The rule file: TOML documents deserialized with their spans, then checked
//! and turned into a [`RuleSetInner`]. Every error names the line and column.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use toml::Spanned;

use crate::Millis;
use crate::ids::GroupId;

use super::expr::BoolExpr;
use super::hours::{self, Calendar, Schedule};
use super::parser::{self, Scope};
use super::response::{DEFAULT_RESPONSE_MS, ResponseRule};
use super::span::{Location, SourceFile};
use super::{AgentCondition, RoutePlan, Rule, RuleError, RuleSetInner, Step};

/// The whole file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    /// Fixed UTC offset for `time.*` and `hours.*`; UTC when absent.
    timezone: Option<Spanned<String>>,
    #[serde(default)]
    hours: BTreeMap<Spanned<String>, HoursDoc>,
    #[serde(default, rename = "rule")]
    rules: Vec<RuleDoc>,
    #[serde(default, rename = "response")]
    responses: Vec<ResponseDoc>,
}

/// `[[response]]`: response targets for a group and channel.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResponseDoc {
    group: Option<Spanned<String>>,
    channel: Option<Spanned<String>>,
    first: Option<Spanned<DurationDoc>>,
    next: Option<Spanned<DurationDoc>>,
    hours: Option<Spanned<String>>,
}

/// `[hours.<name>]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HoursDoc {
    days: Spanned<Vec<Spanned<String>>>,
    open: Spanned<String>,
    close: Spanned<String>,
    #[serde(default)]
    closed_dates: Vec<Spanned<String>>,
}

/// `[[rule]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDoc {
    name: Spanned<String>,
    /// Absent means "every contact".
    filter: Option<Spanned<String>>,
    #[serde(default)]
    step: Vec<StepDoc>,
}

/// `[[rule.step]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepDoc {
    group: Spanned<String>,
    agent: Option<Spanned<String>>,
    #[serde(default)]
    priority: i32,
    timeout: Option<Spanned<DurationDoc>>,
    #[serde(default)]
    sticky: bool,
}

/// `timeout = 30` or `timeout = "30s"`.
enum DurationDoc {
    Seconds(i64),
    Text(String),
}

impl<'de> Deserialize<'de> for DurationDoc {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;
        impl Visitor<'_> for DurationVisitor {
            type Value = DurationDoc;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"a duration such as "30s", "2m", "1h" or a whole number of seconds"#)
            }
            fn visit_i64<E: de::Error>(self, seconds: i64) -> Result<DurationDoc, E> {
                Ok(DurationDoc::Seconds(seconds))
            }
            fn visit_u64<E: de::Error>(self, seconds: u64) -> Result<DurationDoc, E> {
                Ok(DurationDoc::Seconds(
                    i64::try_from(seconds).unwrap_or(i64::MAX),
                ))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<DurationDoc, E> {
                Ok(DurationDoc::Text(text.to_owned()))
            }
        }
        deserializer.deserialize_any(DurationVisitor)
    }
}

/// Parses, checks and assembles a rule file.
pub(super) fn load(text: &str, name: &str) -> Result<RuleSetInner, RuleError> {
    let file = SourceFile { text, name };
    let doc: FileDoc = toml::from_str(text).map_err(|error| {
        let offset = error.span().map_or(0, |span| span.start);
        file.error_at(offset, error.message().trim())
    })?;
    let schedule = Arc::new(load_schedule(&file, &doc)?);
    let calendar_names: Vec<&str> = schedule.calendars.iter().map(|c| &*c.name).collect();
    if doc.rules.is_empty() {
        return Err(file.error_at(0, "the file has no [[rule]]; add at least one rule"));
    }
    let mut loader = Loader {
        file: &file,
        calendar_names: &calendar_names,
        schedule: &schedule,
        groups: Vec::new(),
        group_refs: Vec::new(),
        channel_refs: Vec::new(),
    };
    let mut rules: Vec<Rule> = Vec::with_capacity(doc.rules.len());
    for rule_doc in &doc.rules {
        let rule = loader.rule(rule_doc)?;
        if let Some(first) = rules.iter().position(|r| r.plan.rule == rule.plan.rule) {
            let first_line = file.location(doc.rules[first].name.span().start).line;
            return Err(file.error_at(
                rule_doc.name.span().start,
                format!(
                    "duplicate rule name `{}` (first used on line {first_line})",
                    rule.plan.rule
                ),
            ));
        }
        rules.push(rule);
    }
    let responses = doc
        .responses
        .iter()
        .map(|response| loader.response(response))
        .collect::<Result<Vec<_>, RuleError>>()?;
    let Loader {
        groups,
        group_refs,
        channel_refs,
        ..
    } = loader;
    Ok(RuleSetInner {
        file: name.to_owned(),
        rules,
        schedule,
        groups,
        group_refs,
        channel_refs,
        responses,
    })
}

fn load_schedule(file: &SourceFile<'_>, doc: &FileDoc) -> Result<Schedule, RuleError> {
    let at = |spanned_start: usize| move |message: String| file.error_at(spanned_start, message);
    let offset_ms = match &doc.timezone {
        None => 0,
        Some(zone) => hours::parse_timezone(zone.get_ref()).map_err(at(zone.span().start))?,
    };
    let mut calendars = Vec::with_capacity(doc.hours.len());
    for (name, hours_doc) in &doc.hours {
        let valid_name = !name.get_ref().is_empty()
            && name
                .get_ref()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid_name {
            return Err(file.error_at(
                name.span().start,
                format!(
                    "business hours name `{}` may only use letters, digits, `_` and `-`",
                    name.get_ref()
                ),
            ));
        }
        if hours_doc.days.get_ref().is_empty() {
            return Err(file.error_at(
                hours_doc.days.span().start,
                r#"`days` is empty; list the working days, e.g. ["mon", "tue"]"#,
            ));
        }
        let mut days = 0u8;
        for day in hours_doc.days.get_ref() {
            days |= 1 << hours::parse_weekday(day.get_ref()).map_err(at(day.span().start))?;
        }
        let open_minute = hours::parse_clock(hours_doc.open.get_ref())
            .map_err(at(hours_doc.open.span().start))?;
        let close_minute = hours::parse_clock(hours_doc.close.get_ref())
            .map_err(at(hours_doc.close.span().start))?;
        if close_minute <= open_minute {
            return Err(file.error_at(
                hours_doc.close.span().start,
                format!(
                    "`close` ({}) must be later than `open` ({}); split overnight hours into two calendars",
                    hours_doc.close.get_ref(),
                    hours_doc.open.get_ref()
                ),
            ));
        }
        let mut closed_days = hours_doc
            .closed_dates
            .iter()
            .map(|date| hours::parse_date(date.get_ref()).map_err(at(date.span().start)))
            .collect::<Result<Vec<i64>, RuleError>>()?;
        closed_days.sort_unstable();
        calendars.push(Calendar {
            name: name.get_ref().clone(),
            days,
            open_minute,
            close_minute,
            closed_days,
        });
    }
    Ok(Schedule {
        offset_ms,
        calendars,
    })
}

/// Turns documents into rules while collecting what validation needs.
struct Loader<'a> {
    file: &'a SourceFile<'a>,
    calendar_names: &'a [&'a str],
    schedule: &'a Arc<Schedule>,
    groups: Vec<GroupId>,
    group_refs: Vec<(GroupId, Location)>,
    channel_refs: Vec<(Arc<str>, Location)>,
}

impl Loader<'_> {
    fn rule(&mut self, doc: &RuleDoc) -> Result<Rule, RuleError> {
        let name = doc.name.get_ref();
        if name.trim().is_empty() {
            return Err(self
                .file
                .error_at(doc.name.span().start, "rule name is empty"));
        }
        let filter = match &doc.filter {
            None => BoolExpr::Const(true),
            Some(filter) => self.condition(filter, Scope::Filter)?,
        };
        if doc.step.is_empty() {
            return Err(self.file.error_at(
                doc.name.span().start,
                format!("rule `{name}` has no steps; add a [[rule.step]] with a `group`"),
            ));
        }
        let n_steps = doc.step.len();
        let steps = doc
            .step
            .iter()
            .enumerate()
            .map(|(step_idx, step)| self.step(step, step_idx + 1 == n_steps))
            .collect::<Result<Arc<[Step]>, RuleError>>()?;
        Ok(Rule {
            filter,
            plan: RoutePlan {
                rule: Arc::from(name.as_str()),
                steps,
            },
        })
    }

    fn step(&mut self, doc: &StepDoc, is_last: bool) -> Result<Step, RuleError> {
        let group_name = doc.group.get_ref().trim();
        if group_name.is_empty() {
            return Err(self
                .file
                .error_at(doc.group.span().start, "`group` is empty"));
        }
        let group = GroupId::new(group_name);
        let group_location = self
            .file
            .location(self.file.offset_in_string(&doc.group.span(), 0));
        self.group_refs.push((group.clone(), group_location));
        if !self.groups.contains(&group) {
            self.groups.push(group.clone());
        }
        let timeout_ms = match &doc.timeout {
            Some(timeout) => Some(
                parse_duration(timeout.get_ref())
                    .map_err(|message| self.file.error_at(timeout.span().start, message))?,
            ),
            None if is_last => None,
            None => {
                return Err(self.file.error_at(
                    doc.group.span().start,
                    "only the last step may wait forever; add a `timeout` to this step",
                ));
            }
        };
        let agent = match &doc.agent {
            None => None,
            Some(source) => Some(Arc::new(AgentCondition {
                source: source.get_ref().as_str().into(),
                expr: self.condition(source, Scope::Agent)?,
                schedule: Arc::clone(self.schedule),
            })),
        };
        Ok(Step {
            group,
            priority: doc.priority,
            timeout_ms,
            sticky: doc.sticky,
            only_agent: None,
            agent,
        })
    }

    /// A `[[response]]` table: its group and channel are checked like a
    /// step's group and a rule's channel literals, its calendar by name.
    fn response(&mut self, doc: &ResponseDoc) -> Result<ResponseRule, RuleError> {
        let group = match &doc.group {
            Some(group) => {
                let name = group.get_ref().trim();
                if name.is_empty() {
                    return Err(self.file.error_at(group.span().start, "`group` is empty"));
                }
                let location = self
                    .file
                    .location(self.file.offset_in_string(&group.span(), 0));
                self.group_refs.push((GroupId::new(name), location));
                Some(GroupId::new(name))
            }
            None => None,
        };
        let channel = match &doc.channel {
            Some(channel) => {
                let location = self
                    .file
                    .location(self.file.offset_in_string(&channel.span(), 0));
                let name: Arc<str> = channel.get_ref().trim().into();
                self.channel_refs.push((Arc::clone(&name), location));
                Some(name)
            }
            None => None,
        };
        let target = |doc: &Option<Spanned<DurationDoc>>| match doc {
            None => Ok(DEFAULT_RESPONSE_MS),
            Some(duration) => parse_duration(duration.get_ref())
                .map_err(|message| self.file.error_at(duration.span().start, message)),
        };
        let (first_ms, next_ms) = (target(&doc.first)?, target(&doc.next)?);
        let calendar = match &doc.hours {
            Some(hours) => Some(
                self.calendar_names
                    .iter()
                    .position(|name| *name == hours.get_ref().trim())
                    .ok_or_else(|| {
                        self.file.error_at(
                            hours.span().start,
                            format!(
                                "unknown business hours `{}`: declare [hours.{}] in this file",
                                hours.get_ref(),
                                hours.get_ref()
                            ),
                        )
                    })?,
            ),
            None => None,
        };
        Ok(ResponseRule {
            group,
            channel,
            first_ms,
            next_ms,
            calendar,
        })
    }

    fn condition(&mut self, source: &Spanned<String>, scope: Scope) -> Result<BoolExpr, RuleError> {
        let token = source.span();
        let parsed = parser::parse_condition(source.get_ref(), scope, self.calendar_names)
            .map_err(|error| {
                let offset = self.file.offset_in_string(&token, error.span.start);
                self.file.error_at(offset, error.message)
            })?;
        for (name, span) in parsed.channel_literals {
            let offset = self.file.offset_in_string(&token, span.start);
            self.channel_refs.push((name, self.file.location(offset)));
        }
        Ok(parsed.expr)
    }
}

/// `"30s"`, `"2m"`, `"1h"` or a number of seconds, in milliseconds.
fn parse_duration(doc: &DurationDoc) -> Result<Millis, String> {
    let (amount, unit_ms, text) = match doc {
        DurationDoc::Seconds(seconds) => (*seconds, 1000, seconds.to_string()),
        DurationDoc::Text(text) => {
            let digits_end = text
                .bytes()
                .position(|b| !b.is_ascii_digit())
                .unwrap_or(text.len());
            let unit_ms = match &text[digits_end..] {
                "s" => 1000,
                "m" => 60_000,
                "h" => 3_600_000,
                _ => 0,
            };
            let amount = text[..digits_end]
                .parse::<i64>()
                .ok()
                .filter(|_| unit_ms > 0);
            let Some(amount) = amount else {
                return Err(format!(
                    r#"invalid duration `{text}`: use "30s", "2m", "1h" or a whole number of seconds"#
                ));
            };
            (amount, unit_ms, text.clone())
        }
    };
    match amount.checked_mul(unit_ms) {
        Some(ms) if ms > 0 => Ok(ms),
        Some(_) => Err(format!(
            "invalid duration `{text}`: a timeout must be longer than zero"
        )),
        None => Err(format!("invalid duration `{text}`: too long")),
    }
}

#[cfg(test)]
mod tests;
