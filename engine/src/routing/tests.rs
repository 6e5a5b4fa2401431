//! Routing through the public API: which plan a contact gets and which agents
//! each step admits.

use std::collections::BTreeMap;

use super::*;
use crate::agent::{Capacity, Role};
use crate::ids::AgentId;

/// Monday 2026-03-02 00:00 UTC.
const MONDAY_UTC: Millis = 1_772_409_600_000;
const HOUR: Millis = 3_600_000;
const DAY: Millis = 24 * HOUR;

fn contact(channel: &str, tier: &str) -> Contact {
    let mut customer = Customer::new("c-1", "李雷");
    customer.tier = tier.to_owned();
    Contact {
        channel: Channel::parse(channel).unwrap(),
        customer,
        message: "你好".to_owned(),
        digits: String::new(),
        at: MONDAY_UTC + 2 * HOUR,
    }
}

/// The rule chosen and each step as `group[/priority][/timeout s][/sticky]`.
fn plan_summary(rules: &RuleSet, contact: &Contact) -> Option<String> {
    let plan = rules.route(contact)?;
    let steps: Vec<String> = plan
        .steps
        .iter()
        .map(|step| {
            let mut text = step.group.to_string();
            if step.priority != 0 {
                text.push_str(&format!("/p{}", step.priority));
            }
            if let Some(ms) = step.timeout_ms {
                text.push_str(&format!("/{}s", ms / 1000));
            }
            if step.sticky {
                text.push_str("/sticky");
            }
            text
        })
        .collect();
    Some(format!("{}: {}", plan.rule, steps.join(" > ")))
}

fn check(rules: &RuleSet, contact: &Contact, expected: Option<&str>) {
    assert_eq!(
        plan_summary(rules, contact).as_deref(),
        expected,
        "{:?} {} at {}",
        contact.channel,
        contact.customer.tier,
        contact.at
    );
}

#[test]
fn default_rules_follow_the_product_brief() {
    let rules = RuleSet::default_rules();
    check(&rules, &contact("web", "vip"), Some("vip: gold_service"));
    check(
        &rules,
        &contact("phone", "standard"),
        Some("phone: phone_support"),
    );
    check(
        &rules,
        &contact("web", "standard"),
        Some("everyone_else: default"),
    );
    // Rule order: a VIP calling by phone is a VIP first.
    check(&rules, &contact("phone", "vip"), Some("vip: gold_service"));
    check(
        &rules,
        &contact("wechat", "standard"),
        Some("everyone_else: default"),
    );
    let groups: Vec<&str> = rules.groups().map(GroupId::as_str).collect();
    assert_eq!(groups, ["gold_service", "phone_support", "default"]);
    let registry = ChannelRegistry::default();
    assert_eq!(
        rules.validate(&|group| groups.contains(&group), &registry),
        Ok(())
    );
}

const BRIEF_EXAMPLE: &str = r#"
timezone = "+08:00"

[hours.support]
days = ["mon", "tue", "wed", "thu", "fri"]
open = "09:00"
close = "18:00"
closed_dates = ["2026-10-01"]

[[rule]]
name = "vip"
filter = 'customer.tier == "vip"'
  [[rule.step]]
  sticky = true
  group = "gold_service"
  timeout = "20s"
  [[rule.step]]
  group = "gold_service"
  priority = 10
  timeout = "60s"
  [[rule.step]]
  group = "default"
  priority = 10

[[rule]]
name = "phone"
filter = 'channel == "phone"'
  [[rule.step]]
  group = "phone_support"
  agent = 'agent.skills.voice >= 2 AND agent.languages HAS customer.language'

[[rule]]
name = "refunds_in_hours"
filter = 'message CONTAINS "退款" AND hours.support'
  [[rule.step]]
  group = "billing"
  timeout = "2m"
  [[rule.step]]
  group = "default"

[[rule]]
name = "everyone_else"
filter = "true"
  [[rule.step]]
  group = "default"
"#;

#[test]
fn overflow_steps_and_business_hours() {
    let rules = RuleSet::parse(BRIEF_EXAMPLE, "rules.toml").unwrap();
    check(
        &rules,
        &contact("web", "vip"),
        Some("vip: gold_service/20s/sticky > gold_service/p10/60s > default/p10"),
    );
    let refund_at = |at: Millis| Contact {
        message: "我要退款".to_owned(),
        at,
        ..contact("web", "standard")
    };
    let in_hours = Some("refunds_in_hours: billing/120s > default");
    let out_of_hours = Some("everyone_else: default");
    // 02:00 UTC Monday is 10:00 in +08:00: open.
    check(&rules, &refund_at(MONDAY_UTC + 2 * HOUR), in_hours);
    // 01:00 UTC is 09:00 local, the first open minute; 10:00 UTC is 18:00 local, closed.
    check(&rules, &refund_at(MONDAY_UTC + HOUR), in_hours);
    check(&rules, &refund_at(MONDAY_UTC + 10 * HOUR - 1), in_hours);
    check(&rules, &refund_at(MONDAY_UTC + 10 * HOUR), out_of_hours);
    // 12:00 UTC would be open in UTC, but it is 20:00 local: the file's timezone counts.
    check(&rules, &refund_at(MONDAY_UTC + 12 * HOUR), out_of_hours);
    // 20:00 UTC Sunday is 04:00 local Monday: before opening.
    check(&rules, &refund_at(MONDAY_UTC - 4 * HOUR), out_of_hours);
    // 17:00 UTC Friday is 01:00 local Saturday: weekend.
    check(
        &rules,
        &refund_at(MONDAY_UTC + 4 * DAY + 17 * HOUR),
        out_of_hours,
    );
    // Saturday 10:00 local.
    check(
        &rules,
        &refund_at(MONDAY_UTC + 5 * DAY + 2 * HOUR),
        out_of_hours,
    );
    // Thursday 2026-10-01 is a holiday; the days around it are not.
    let october_1_utc: Millis = 1_790_812_800_000;
    check(&rules, &refund_at(october_1_utc + 2 * HOUR), out_of_hours);
    check(&rules, &refund_at(october_1_utc - DAY + 2 * HOUR), in_hours);
    check(&rules, &refund_at(october_1_utc + DAY + 2 * HOUR), in_hours);
}

#[test]
fn ivr_digits_choose_the_rule() {
    let rules = RuleSet::parse(
        "[[rule]]\nname = \"billing_line\"\nfilter = 'channel == \"phone\" AND contact.digits == \"2\"'\n\
         [[rule.step]]\ngroup = \"billing\"\n\
         [[rule]]\nname = \"phones\"\nfilter = 'channel == \"phone\"'\n[[rule.step]]\ngroup = \"phone_support\"\n",
        "rules.toml",
    )
    .unwrap();
    let mut pressed_two = contact("phone", "standard");
    pressed_two.digits = "2".to_owned();
    check(&rules, &pressed_two, Some("billing_line: billing"));
    let mut pressed_one = contact("phone", "standard");
    pressed_one.digits = "1".to_owned();
    check(&rules, &pressed_one, Some("phones: phone_support"));
    check(
        &rules,
        &contact("phone", "standard"),
        Some("phones: phone_support"),
    );
}

#[test]
fn no_catch_all_routes_nothing() {
    let rules = RuleSet::parse(
        "[[rule]]\nname = \"vip\"\nfilter = 'customer.tier == \"vip\"'\n[[rule.step]]\ngroup = \"gold_service\"\n",
        "rules.toml",
    )
    .unwrap();
    check(&rules, &contact("web", "vip"), Some("vip: gold_service"));
    check(&rules, &contact("web", "standard"), None);
}

fn agent(id: &str, voice: Option<u8>, languages: &[&str]) -> Agent {
    Agent {
        id: AgentId::new(id),
        display_name: id.to_owned(),
        role: Role::Junior,
        skills: voice
            .map(|level| BTreeMap::from([("voice".to_owned(), level)]))
            .unwrap_or_default(),
        groups: vec![GroupId::new("phone_support"), GroupId::new("gold_service")],
        languages: languages.iter().map(|l| (*l).to_owned()).collect(),
        capacity: Capacity::default(),
        sip: None,
    }
}

/// Which of `agents` each step of the contact's plan admits, or `-` when the
/// step does not apply to the contact.
fn check_admits(contact: &Contact, agents: &[Agent], expected: &[&str]) {
    let rules = RuleSet::parse(BRIEF_EXAMPLE, "rules.toml").unwrap();
    let plan = rules.route(contact).unwrap();
    let got: Vec<String> = plan
        .steps
        .iter()
        .map(|step| {
            if !step.applies_to(contact) {
                return "-".to_owned();
            }
            let admitted: Vec<&str> = agents
                .iter()
                .filter(|agent| step.admits(agent, contact))
                .map(|agent| agent.id.as_str())
                .collect();
            admitted.join(",")
        })
        .collect();
    assert_eq!(got, expected, "{contact:?}");
}

#[test]
fn admits_by_skill_language_and_last_agent() {
    let agents = [
        agent("ann", Some(3), &["zh-CN"]),
        agent("bob", Some(2), &["en", "zh-CN"]),
        agent("cat", Some(1), &["zh-CN"]),
        agent("dan", None, &["zh-CN"]),
        agent("eve", Some(5), &["en"]),
    ];
    let phone = contact("phone", "standard");
    check_admits(&phone, &agents, &["ann,bob"]);
    let english_phone = Contact {
        customer: Customer {
            language: "en".to_owned(),
            ..phone.customer.clone()
        },
        ..phone.clone()
    };
    check_admits(&english_phone, &agents, &["bob,eve"]);
    // A new VIP has no last agent: the sticky step is skipped.
    let vip = contact("web", "vip");
    check_admits(
        &vip,
        &agents,
        &["-", "ann,bob,cat,dan,eve", "ann,bob,cat,dan,eve"],
    );
    // A returning VIP goes to their last agent first.
    let mut returning = vip.clone();
    returning.customer.last_agent = Some(AgentId::new("cat"));
    check_admits(
        &returning,
        &agents,
        &["cat", "ann,bob,cat,dan,eve", "ann,bob,cat,dan,eve"],
    );
    let step = &RuleSet::parse(BRIEF_EXAMPLE, "rules.toml")
        .unwrap()
        .route(&phone)
        .unwrap()
        .steps[0];
    assert_eq!(
        step.agent_expression(),
        Some("agent.skills.voice >= 2 AND agent.languages HAS customer.language")
    );
    assert_eq!(
        step.to_string(),
        "phone_support where agent.skills.voice >= 2 AND agent.languages HAS customer.language, \
         priority 0, until answered"
    );
}

#[test]
fn a_step_crosses_to_another_node_as_parts_and_admits_the_same_agents() {
    let agents = [
        agent("ann", Some(3), &["zh-CN"]),
        agent("bob", Some(2), &["en", "zh-CN"]),
        agent("dan", None, &["zh-CN"]),
        agent("eve", Some(5), &["en"]),
    ];
    let rules = RuleSet::parse(BRIEF_EXAMPLE, "rules.toml").unwrap();
    let other_node = RuleSet::parse(BRIEF_EXAMPLE, "rules.toml").unwrap();
    let mut returning_vip = contact("web", "vip");
    returning_vip.customer.last_agent = Some(AgentId::new("dan"));
    for contact in [contact("phone", "standard"), returning_vip] {
        for step in rules.route(&contact).unwrap().steps.iter() {
            let wire = serde_json::to_string(&step.parts()).unwrap();
            let contact_wire = serde_json::to_string(&contact).unwrap();
            let rebuilt = other_node
                .step_from_parts(serde_json::from_str(&wire).unwrap())
                .unwrap();
            let contact_there: Contact = serde_json::from_str(&contact_wire).unwrap();
            assert_eq!(rebuilt.parts(), step.parts());
            for agent in &agents {
                assert_eq!(
                    rebuilt.admits(agent, &contact_there),
                    step.admits(agent, &contact),
                    "{} under {step}",
                    agent.id
                );
            }
        }
    }
    // A node whose rules lack a calendar the expression names says so.
    let parts = StepParts {
        agent: Some("hours.nowhere".into()),
        ..Step::to_group(GroupId::new("default"), 0).parts()
    };
    let err = other_node.step_from_parts(parts).unwrap_err();
    assert!(err.contains("hours.nowhere"), "{err}");
}

#[test]
fn response_targets_match_by_group_and_channel_and_run_on_business_hours() {
    let rules = RuleSet::parse(
        r#"timezone = "+08:00"
[hours.support]
days = ["mon", "tue", "wed", "thu", "fri"]
open = "09:00"
close = "18:00"

[[rule]]
name = "all"
[[rule.step]]
group = "default"

[[response]]
group = "gold_service"
channel = "wechat"
first = "20s"
next = 60

[[response]]
group = "default"
first = "2m"
hours = "support"
"#,
        "rules.toml",
    )
    .unwrap();
    let gold = GroupId::new("gold_service");
    let default = GroupId::new("default");
    let wechat = Channel::parse("wechat").unwrap();
    let web = Channel::parse("web").unwrap();
    let policy = rules.response_policy(Some(&gold), &wechat);
    assert_eq!((policy.first_ms, policy.next_ms), (20_000, 60_000));
    assert_eq!(policy.calendar(), None);
    assert_eq!(policy.due(ResponseKind::Next, 1_000), 61_000);
    // Another channel of the same group: no table matches, 30 s and 30 s.
    let policy = rules.response_policy(Some(&gold), &web);
    assert_eq!((policy.first_ms, policy.next_ms), (30_000, 30_000));
    let policy = rules.response_policy(None, &web);
    assert_eq!(policy.first_ms, DEFAULT_RESPONSE_MS);

    // default: 2 minutes, counted in open hours only (+08:00, 09:00–18:00).
    let policy = rules.response_policy(Some(&default), &web);
    assert_eq!(policy.calendar(), Some("support"));
    assert_eq!(
        policy.next_ms, DEFAULT_RESPONSE_MS,
        "next keeps its default"
    );
    let minute = 60_000;
    // Monday 10:00 local (02:00 UTC): open, due two minutes later.
    let at = MONDAY_UTC + 2 * HOUR;
    assert_eq!(policy.due(ResponseKind::First, at), at + 2 * minute);
    // Monday 17:59 local: one minute today, the other at 09:00 Tuesday.
    let at = MONDAY_UTC + 10 * HOUR - minute;
    assert_eq!(
        policy.due(ResponseKind::First, at),
        MONDAY_UTC + DAY + HOUR + minute
    );
    // Friday 20:00 local: the clock waits for Monday 09:00.
    let at = MONDAY_UTC + 4 * DAY + 12 * HOUR;
    assert_eq!(
        policy.due(ResponseKind::First, at),
        MONDAY_UTC + 7 * DAY + HOUR + 2 * minute
    );
}

#[test]
fn response_tables_name_what_is_wrong() {
    let base = "[hours.support]\ndays = [\"mon\"]\nopen = \"09:00\"\nclose = \"18:00\"\n\
                [[rule]]\nname = \"all\"\n[[rule.step]]\ngroup = \"default\"\n";
    for (table, wanted) in [
        (
            "[[response]]\nhours = \"night\"\n",
            "unknown business hours `night`",
        ),
        ("[[response]]\nfirst = \"soon\"\n", "soon"),
        ("[[response]]\nlater = \"10s\"\n", "later"),
        ("[[response]]\ngroup = \" \"\n", "`group` is empty"),
    ] {
        let err = RuleSet::parse(&format!("{base}{table}"), "rules.toml").unwrap_err();
        assert!(err.to_string().contains(wanted), "{table}: {err}");
        assert!(
            err.line >= 9,
            "{table}: the error points into the table: {err}"
        );
    }
    let rules = RuleSet::parse(
        &format!("{base}[[response]]\ngroup = \"vip\"\n"),
        "rules.toml",
    )
    .unwrap();
    let groups = |name: &str| name == "default";
    let err = rules
        .validate(&groups, &crate::channel::ChannelRegistry::default())
        .unwrap_err();
    assert!(err.to_string().contains("vip"), "{err}");
}
