//! Evaluates type-checked expressions. Evaluation is total: every field has a
//! value (an agent field with no agent is empty or 0), nothing allocates, and
//! nothing can fail.

use crate::agent::Agent;

use super::Contact;
use super::expr::{BoolExpr, CompareOp, Num, Text, TextField, TextList};
use super::hours::{LocalTime, Schedule};

/// What an expression can see.
pub(crate) struct Env<'a> {
    pub(crate) contact: &'a Contact,
    /// The candidate agent; `None` for filters.
    pub(crate) agent: Option<&'a Agent>,
    pub(crate) schedule: &'a Schedule,
    pub(crate) local: LocalTime,
}

impl<'a> Env<'a> {
    pub(crate) fn new(
        contact: &'a Contact,
        agent: Option<&'a Agent>,
        schedule: &'a Schedule,
    ) -> Self {
        Env {
            contact,
            agent,
            schedule,
            local: schedule.local_time(contact.at),
        }
    }
}

impl BoolExpr {
    pub(crate) fn eval(&self, env: &Env<'_>) -> bool {
        match self {
            BoolExpr::Const(value) => *value,
            BoolExpr::Hours(index) => env.schedule.is_open(*index, env.local),
            BoolExpr::Not(inner) => !inner.eval(env),
            BoolExpr::All(items) => items.iter().all(|item| item.eval(env)),
            BoolExpr::Any(items) => items.iter().any(|item| item.eval(env)),
            BoolExpr::BoolEq(a, b) => a.eval(env) == b.eval(env),
            BoolExpr::TextEq(a, b) => text(a, env) == text(b, env),
            BoolExpr::NumCompare(op, a, b) => {
                let (a, b) = (number(a, env), number(b, env));
                match op {
                    CompareOp::Eq => a == b,
                    CompareOp::Ne => a != b,
                    CompareOp::Lt => a < b,
                    CompareOp::Le => a <= b,
                    CompareOp::Gt => a > b,
                    CompareOp::Ge => a >= b,
                }
            }
            BoolExpr::TextIn(item, list) => list_has(list, env, text(item, env)),
            BoolExpr::NumIn(item, list) => {
                let item = number(item, env);
                list.contains(&item)
            }
            BoolExpr::Contains(haystack, needle) => text(haystack, env).contains(text(needle, env)),
        }
    }
}

fn text<'a>(value: &'a Text, env: &Env<'a>) -> &'a str {
    let field = match value {
        Text::Lit(text) => return text,
        Text::Field(field) => field,
    };
    let customer = &env.contact.customer;
    match field {
        TextField::Channel => env.contact.channel.as_str(),
        TextField::CustomerId => customer.id.as_str(),
        TextField::CustomerTier => &customer.tier,
        TextField::CustomerLanguage => &customer.language,
        TextField::CustomerLastAgent => customer.last_agent.as_ref().map_or("", |id| id.as_str()),
        TextField::Message => &env.contact.message,
        TextField::Digits => &env.contact.digits,
        TextField::TimeWeekday => env.local.weekday_name(),
        TextField::AgentId => env.agent.map_or("", |agent| agent.id.as_str()),
        TextField::AgentRole => env.agent.map_or("", |agent| agent.role.as_str()),
    }
}

fn number(value: &Num, env: &Env<'_>) -> f64 {
    match value {
        Num::Lit(number) => *number,
        Num::TimeHour => f64::from(env.local.hour()),
        Num::AgentSkill(skill) => env
            .agent
            .and_then(|agent| agent.skills.get(&**skill))
            .map_or(0.0, |&level| f64::from(level)),
    }
}

fn list_has(list: &TextList, env: &Env<'_>, needle: &str) -> bool {
    match list {
        TextList::Lit(items) => items.iter().any(|item| &**item == needle),
        TextList::CustomerTags => env.contact.customer.tags.iter().any(|tag| tag == needle),
        TextList::AgentGroups => env
            .agent
            .is_some_and(|agent| agent.groups.iter().any(|group| group.as_str() == needle)),
        TextList::AgentLanguages => env
            .agent
            .is_some_and(|agent| agent.languages.iter().any(|language| language == needle)),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::agent::{Capacity, Role};
    use crate::channel::Channel;
    use crate::customer::Customer;
    use crate::ids::{AgentId, GroupId};
    use crate::routing::parser::{Scope, parse_condition};

    /// Wednesday 2026-03-04 10:30 UTC.
    const WEDNESDAY_10_30: crate::Millis = 1_772_620_200_000;

    fn contact() -> Contact {
        let mut customer = Customer::new("c-42", "王小明");
        customer.tier = "vip".to_owned();
        customer.tags = vec!["complaint".to_owned(), "churn-risk".to_owned()];
        customer.language = "zh-CN".to_owned();
        customer.last_agent = Some(AgentId::new("alice"));
        Contact {
            channel: Channel::Wechat,
            customer,
            message: "我要退款，订单号 12345".to_owned(),
            digits: String::new(),
            at: WEDNESDAY_10_30,
        }
    }

    fn agent() -> Agent {
        Agent {
            id: AgentId::new("alice"),
            display_name: "Alice".to_owned(),
            role: Role::Expert,
            skills: BTreeMap::from([("billing".to_owned(), 3), ("voice".to_owned(), 2)]),
            groups: vec![GroupId::new("gold_service"), GroupId::new("default")],
            languages: vec!["zh-CN".to_owned(), "en".to_owned()],
            capacity: Capacity::default(),
            sip: None,
        }
    }

    fn check(input: &str, expected: bool) {
        let schedule = Schedule {
            offset_ms: 0,
            calendars: Vec::new(),
        };
        let parsed = parse_condition(input, Scope::Agent, &[])
            .unwrap_or_else(|error| panic!("{input:?} failed to parse: {error:?}"));
        let (contact, agent) = (contact(), agent());
        let env = Env::new(&contact, Some(&agent), &schedule);
        assert_eq!(parsed.expr.eval(&env), expected, "{input}");
    }

    #[test]
    fn expressions() {
        // Literals and equality.
        check("true", true);
        check("false", false);
        check("TRUE", true);
        check(r#"customer.tier == "vip""#, true);
        check("customer.tier == 'vip'", true);
        check(r#"customer.tier != "vip""#, false);
        check(r#"customer.tier == "VIP""#, false);
        check(r#"channel == "wechat""#, true);
        check(r#""wechat" == channel"#, true);
        check(r#"customer.id == "c-42""#, true);
        check(r#"customer.language == "zh-CN""#, true);
        check(r#"customer.last_agent == "alice""#, true);
        check(r#"agent.id == customer.last_agent"#, true);
        check(r#"agent.role == "expert""#, true);
        check("true == true", true);
        check("true != false", true);
        check("(1 == 1) == true", true);
        // Numbers.
        check("agent.skills.billing >= 3", true);
        check("agent.skills.billing > 3", false);
        check("agent.skills.billing < 3.5", true);
        check("agent.skills.billing <= 2", false);
        check("agent.skills.voice == 2", true);
        check("agent.skills.voice != 2.0", false);
        check("agent.skills.after-sales == 0", true);
        check("agent.skills.missing < 1", true);
        check("-1 < 0", true);
        check("time.hour == 10", true);
        check(r#"time.weekday == "wed""#, true);
        check("time.hour IN [9, 10, 11]", true);
        check("time.hour IN [12, 13]", false);
        // Lists.
        check(r#"channel IN ["web", "app"]"#, false);
        check(r#"channel IN ["web", "wechat"]"#, true);
        check(r#"channel IN []"#, false);
        check(r#"customer.tags HAS "complaint""#, true);
        check(r#"customer.tags HAS "vip""#, false);
        check(r#""churn-risk" IN customer.tags"#, true);
        check("agent.languages HAS customer.language", true);
        check("customer.language IN agent.languages", true);
        check(r#"agent.groups HAS "gold_service""#, true);
        check(r#"agent.groups has "phone_support""#, false);
        // Substrings, including Chinese text.
        check(r#"message CONTAINS "退款""#, true);
        check(r#"message contains "发货""#, false);
        check(r#"message CONTAINS "12345""#, true);
        check(r#"message CONTAINS """#, true);
        // Boolean operators and precedence: NOT > comparisons > AND > OR.
        check("true AND false", false);
        check("true and true", true);
        check("false OR true", true);
        check("false or false", false);
        check("NOT false", true);
        check("not true", false);
        check("NOT NOT true", true);
        check("true OR false AND false", true);
        check("(true OR false) AND false", false);
        check("false AND false OR true", true);
        check("false AND (false OR true)", false);
        check("NOT false AND false", false);
        check("NOT (false AND false)", true);
        check("NOT true == false", true);
        check(r#"NOT (channel == "web")"#, true);
        check(
            r#"customer.tier == "vip" AND channel IN ["wechat", "app"] AND NOT (message CONTAINS "发货")"#,
            true,
        );
        check(
            r#"agent.skills.voice >= 2 AND agent.languages HAS customer.language"#,
            true,
        );
        check("(((true)))", true);
        // Escapes inside strings.
        check(r#""it's" == 'it\'s'"#, true);
    }

    #[test]
    fn agent_fields_without_an_agent_are_empty() {
        let schedule = Schedule::default();
        let contact = contact();
        let env = Env::new(&contact, None, &schedule);
        for (input, expected) in [
            ("agent.skills.billing == 0", true),
            (r#"agent.id == """#, true),
            (r#"agent.role == """#, true),
            (r#"agent.groups HAS "default""#, false),
            (r#"agent.languages HAS "en""#, false),
        ] {
            let parsed = parse_condition(input, Scope::Agent, &[]).unwrap();
            assert_eq!(parsed.expr.eval(&env), expected, "{input}");
        }
    }

    /// A small deterministic generator, so the test needs no dependency and
    /// fails the same way every time.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    #[test]
    fn random_and_truncated_input_never_panics() {
        let seeds = [
            r#"customer.tier == "vip" AND channel IN ["web", "app"]"#,
            r#"NOT (message CONTAINS "退款") OR agent.skills.voice >= 2.5"#,
            r#"agent.languages HAS customer.language and hours.support"#,
            r#"(time.hour < 9 OR time.weekday IN ['sat', 'sun']) == false"#,
            r#"customer.tags HAS "vip" AND [1, 2] HAS -3"#,
        ];
        let alphabet: &[u8] = b"()[],\"'=!<>.-_ aANDORNOTINHAScontains0123456789\\\xe9\x80\x80";
        let mut random = XorShift(0x9E37_79B9_7F4A_7C15);
        let (contact, agent) = (contact(), agent());
        let schedule = Schedule::default();
        let env = Env::new(&contact, Some(&agent), &schedule);
        let mut n_parsed = 0;
        for round in 0..4000 {
            let seed = seeds[round % seeds.len()].as_bytes();
            let mut bytes = seed.to_vec();
            match round % 4 {
                0 => bytes.truncate(random.below(bytes.len() + 1)),
                1 => {
                    for _ in 0..1 + random.below(4) {
                        let at = random.below(bytes.len());
                        bytes[at] = alphabet[random.below(alphabet.len())];
                    }
                }
                2 => {
                    let start = random.below(bytes.len());
                    let end = start + random.below(bytes.len() - start);
                    let at = random.below(bytes.len());
                    let slice = bytes[start..end].to_vec();
                    bytes.splice(at..at, slice);
                }
                _ => {
                    bytes = (0..random.below(40))
                        .map(|_| alphabet[random.below(alphabet.len())])
                        .collect();
                }
            }
            let input = String::from_utf8_lossy(&bytes);
            if let Ok(parsed) = parse_condition(&input, Scope::Agent, &["support"]) {
                n_parsed += 1;
                parsed.expr.eval(&env);
            }
        }
        // Deeply nested input is refused, not a stack overflow.
        let deep = format!("{}true{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(parse_condition(&deep, Scope::Filter, &[]).is_err());
        let deep_not = format!("{}true", "NOT ".repeat(10_000));
        assert!(parse_condition(&deep_not, Scope::Filter, &[]).is_err());
        let long_chain = vec!["true"; 10_000].join(" AND ");
        assert!(parse_condition(&long_chain, Scope::Filter, &[]).is_ok());
        assert!(n_parsed > 0, "some mutations should still parse");
    }
}
