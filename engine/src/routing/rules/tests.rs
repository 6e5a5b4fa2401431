use crate::channel::ChannelRegistry;
use crate::routing::RuleSet;

/// A one-rule file whose filter `expression` starts at line 3, column 11.
fn with_filter(expression: &str) -> String {
    format!("[[rule]]\nname = \"a\"\nfilter = '{expression}'\n[[rule.step]]\ngroup = \"g\"\n")
}

/// A one-rule file whose step's agent `expression` starts at line 5, column 10.
fn with_agent(expression: &str) -> String {
    format!("[[rule]]\nname = \"a\"\n[[rule.step]]\ngroup = \"g\"\nagent = '{expression}'\n")
}

/// Parses and validates `input` against groups `g`, `gold_service` and
/// `default` and the built-in channels plus `line`.
fn check(input: &str, expected: Result<(), &str>) {
    let registry = ChannelRegistry::new(["line"]).unwrap();
    let known_group = |group: &str| ["g", "gold_service", "default"].contains(&group);
    let got = RuleSet::parse(input, "rules.toml")
        .and_then(|rules| rules.validate(&known_group, &registry))
        .map_err(|error| error.to_string());
    assert_eq!(got, expected.map_err(str::to_owned), "input:\n{input}");
}

#[test]
fn expression_errors() {
    check(
        &with_filter(r#"customer.teir == "vip""#),
        Err("rules.toml:3:11: unknown field `customer.teir` (did you mean `customer.tier`?)"),
    );
    check(
        &with_filter("Channel == 1"),
        Err("rules.toml:3:11: unknown field `Channel` (did you mean `channel`?)"),
    );
    check(
        &with_filter("agent.skills > 1"),
        Err("rules.toml:3:11: unknown field `agent.skills` (did you mean `agent.skills.<skill>`?)"),
    );
    check(
        &with_filter("customer.tier == 3"),
        Err("rules.toml:3:25: `==` cannot compare text with a number"),
    );
    check(
        &with_filter(r#"customer.tier < "vip""#),
        Err("rules.toml:3:25: `<` needs numbers on both sides, found text"),
    );
    check(
        &with_filter(r#"channel == "web" AND customer.tier"#),
        Err("rules.toml:3:32: `AND` needs a condition (true/false) on each side, found text"),
    );
    check(
        &with_filter(r#"message CONTAINS "退款"#),
        Err("rules.toml:3:28: unterminated string: add the closing quote"),
    );
    check(
        &with_filter(r#"channel == == "web""#),
        Err("rules.toml:3:22: expected an expression, found `==`"),
    );
    check(
        &with_filter(r#"channel == "web" "app""#),
        Err(r#"rules.toml:3:28: unexpected string "app" after a complete expression"#),
    );
    check(
        &with_filter(r#"(channel == "web""#),
        Err("rules.toml:3:28: expected `)` to close the `(`, found the end of the expression"),
    );
    check(
        &with_filter(r#"channel = "web""#),
        Err("rules.toml:3:19: unexpected character `=`; use `==` to compare"),
    );
    check(
        &with_filter("time.hour == 1 == true"),
        Err("rules.toml:3:26: comparisons cannot be chained; add parentheses"),
    );
    check(
        &with_filter("time.hour >= 2."),
        Err("rules.toml:3:24: invalid number `2.`"),
    );
    check(
        &with_filter("agent.skills.voice >= 2"),
        Err("rules.toml:3:11: `agent.skills.voice` is an agent field; \
             it is only allowed in a step's `agent` expression"),
    );
    check(
        &with_filter("customer.tier"),
        Err("rules.toml:3:11: a filter must be a condition (true/false), found text"),
    );
    check(
        &with_filter(r#"NOT channel == "web""#),
        Err(
            "rules.toml:3:15: `NOT` needs a condition (true/false), found text; \
             NOT binds tighter than comparisons, so write `NOT (a == b)`",
        ),
    );
    check(
        &with_filter(r#"customer.tags CONTAINS "vip""#),
        Err(
            "rules.toml:3:11: `CONTAINS` needs text on both sides, found a list of text; \
             use `HAS` to test whether a list holds an item",
        ),
    );
    check(
        &with_filter(r#"channel IN "web""#),
        Err("rules.toml:3:22: `IN` needs a list on its right, found text"),
    );
    check(
        &with_filter(r#"customer.tier HAS "vip""#),
        Err("rules.toml:3:11: `HAS` needs a list on its left, found text"),
    );
    check(
        &with_filter(r#"time.hour IN ["9"]"#),
        Err("rules.toml:3:21: `IN` cannot look for a number in a list of text"),
    );
    check(
        &with_filter(r#"channel IN ["web", 1]"#),
        Err("rules.toml:3:30: a list must hold only text or only numbers"),
    );
    check(
        &with_filter(r#"customer.tags == ["vip"]"#),
        Err("rules.toml:3:25: `==` cannot compare lists; use `IN` or `HAS`"),
    );
    check(
        &with_filter("hours.support"),
        Err(
            "rules.toml:3:11: unknown business hours `hours.support` (declare it with [hours.support])",
        ),
    );
    check(
        &with_agent(r#"agent.skills.voice >= "2""#),
        Err("rules.toml:5:29: `>=` cannot compare a number with text"),
    );
    check(
        &with_agent("agent.languages HAS customer.languge"),
        Err(
            "rules.toml:5:30: unknown field `customer.languge` (did you mean `customer.language`?)",
        ),
    );
    // Escapes in a basic TOML string still give the right column.
    check(
        "[[rule]]\nname = \"a\"\nfilter = \"customer.tier == \\\"vip\\\" AND customer.teir == 1\"\n\
         [[rule.step]]\ngroup = \"g\"\n",
        Err("rules.toml:3:40: unknown field `customer.teir` (did you mean `customer.tier`?)"),
    );
}

#[test]
fn file_errors() {
    check(&with_filter("true"), Ok(()));
    check(
        "[[rule]]\nname = \"a\"\nfilter = 'true'\n",
        Err("rules.toml:2:8: rule `a` has no steps; add a [[rule.step]] with a `group`"),
    );
    check(
        "[[rule]]\nname = \"a\"\n[[rule.step]]\ngroup = \"g\"\n[[rule.step]]\ngroup = \"default\"\n",
        Err("rules.toml:4:9: only the last step may wait forever; add a `timeout` to this step"),
    );
    check(
        "[[rule]]\nname = \"a\"\n[[rule.step]]\ngroup = \"g\"\ntimeout = \"3x\"\n",
        Err(
            r#"rules.toml:5:11: invalid duration `3x`: use "30s", "2m", "1h" or a whole number of seconds"#,
        ),
    );
    check(
        "[[rule]]\nname = \"a\"\n[[rule.step]]\ngroup = \"g\"\ntimeout = 0\n",
        Err("rules.toml:5:11: invalid duration `0`: a timeout must be longer than zero"),
    );
    check(
        "[[rule]]\nname = \"a\"\n[[rule.step]]\ngroup = \"g\"\ntimeout = 2.5\n",
        Err(
            r#"rules.toml:5:11: invalid type: floating point `2.5`, expected a duration such as "30s", "2m", "1h" or a whole number of seconds"#,
        ),
    );
    check(
        "[[rule]]\nname = \"a\"\n[[rule.step]]\ngroup = \"g\"\ntiemout = 3\n",
        Err("rules.toml:5:1: unknown field `tiemout`, expected one of \
             `group`, `agent`, `priority`, `timeout`, `sticky`"),
    );
    check(
        "timezon = \"+08:00\"\n",
        Err(
            "rules.toml:1:1: unknown field `timezon`, expected one of `timezone`, `hours`, `rule`, `response`",
        ),
    );
    check(
        "[[rule]]\nname = \"a\"\n[[rule.step]]\n",
        Err("rules.toml:3:1: missing field `group`"),
    );
    check(
        "[[rule]]\nname = \"a\nfilter = 'true'\n",
        Err("rules.toml:2:10: invalid basic string, expected `\"`"),
    );
    check(
        "",
        Err("rules.toml:1:1: the file has no [[rule]]; add at least one rule"),
    );
    check(
        "[[rule]]\nname = \"a\"\n[[rule.step]]\ngroup = \"g\"\n\
         [[rule]]\nname = \"a\"\n[[rule.step]]\ngroup = \"g\"\n",
        Err("rules.toml:6:8: duplicate rule name `a` (first used on line 2)"),
    );
    check(
        &format!("timezone = \"Asia/Shanghai\"\n{}", with_filter("true")),
        Err(
            r#"rules.toml:1:12: invalid timezone `Asia/Shanghai`: use a fixed UTC offset such as "+08:00" or "-05:00""#,
        ),
    );
    let hours = |days: &str, open: &str, close: &str, closed: &str| {
        format!(
            "[hours.support]\ndays = {days}\nopen = \"{open}\"\nclose = \"{close}\"\n\
             closed_dates = [{closed}]\n{}",
            with_filter("hours.support")
        )
    };
    check(
        &hours(r#"["mon"]"#, "09:00", "18:00", r#""2026-10-01""#),
        Ok(()),
    );
    check(
        &hours(r#"["monday"]"#, "09:00", "18:00", ""),
        Err("rules.toml:2:9: unknown day `monday`: use mon, tue, wed, thu, fri, sat or sun"),
    );
    check(
        &hours("[]", "09:00", "18:00", ""),
        Err(r#"rules.toml:2:8: `days` is empty; list the working days, e.g. ["mon", "tue"]"#),
    );
    check(
        &hours(r#"["mon"]"#, "9am", "18:00", ""),
        Err(r#"rules.toml:3:8: invalid time `9am`: use 24-hour HH:MM such as "09:00""#),
    );
    check(
        &hours(r#"["mon"]"#, "18:00", "09:00", ""),
        Err(
            "rules.toml:4:9: `close` (09:00) must be later than `open` (18:00); \
             split overnight hours into two calendars",
        ),
    );
    check(
        &hours(r#"["mon"]"#, "09:00", "18:00", r#""2026-10-32""#),
        Err(r#"rules.toml:5:17: invalid date `2026-10-32`: use YYYY-MM-DD such as "2026-10-01""#),
    );
}

#[test]
fn validation_errors() {
    check(
        "[[rule]]\nname = \"a\"\n[[rule.step]]\ngroup = \"gold_servce\"\n",
        Err("rules.toml:4:10: unknown skill group `gold_servce`"),
    );
    check(
        &with_filter(r#"channel == "fax""#),
        Err("rules.toml:3:22: unknown channel `fax`"),
    );
    check(
        &with_filter(r#"channel IN ["web", "line", "fax"]"#),
        Err("rules.toml:3:38: unknown channel `fax`"),
    );
    check(
        &with_agent(r#""We Chat" != channel"#),
        Err("rules.toml:5:10: invalid channel name `We Chat`: \
             use 1-32 characters of a-z, 0-9, `_` or `-`"),
    );
    check(&with_filter(r#"channel IN ["web", "line"]"#), Ok(()));
    // Text that merely mentions a channel is not a channel name.
    check(&with_filter(r#"message CONTAINS "fax""#), Ok(()));
}
