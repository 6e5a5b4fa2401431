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
