//! Property tests of the rule language: any text loads or fails with an
//! error naming a line and column inside the file, and generated valid
//! expressions parse and evaluate to what a reference model of the
//! language says. `PROPTEST_CASES=10000 cargo test -p engine proptests`
//! runs more cases than the 256 of a normal run.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::eval::Env;
use super::hours::Schedule;
use super::parser::{Scope, parse_condition};
use super::*;
use crate::agent::{Capacity, Role};

/// 256 cases, or `PROPTEST_CASES` (proptest's default reads it).
fn config() -> ProptestConfig {
    ProptestConfig::default()
}

// ---------------------------------------------------------------------------
// Arbitrary rule files.

/// Pieces of rule files, valid and not, so that random joins reach deep
/// into the loader rather than failing on the first byte.
const FRAGMENTS: [&str; 24] = [
    "[[rule]]\n",
    "name = \"vip\"\n",
    "name = \"other\"\n",
    "filter = 'customer.tier == \"vip\"'\n",
    "filter = \"channel IN ['web', 'app']\"\n",
    "filter = 'NOT (message CONTAINS \"退款\") OR hours.support'\n",
    "filter = 'customer.tags HAS \"vip\" AND'\n",
    "  [[rule.step]]\n",
    "  group = \"gold_service\"\n",
    "  group = \"\"\n",
    "  timeout = \"30s\"\n",
    "  timeout = -5\n",
    "  timeout = \"soon\"\n",
    "  priority = 10\n",
    "  sticky = true\n",
    "  agent = 'agent.skills.billing >= 3'\n",
    "  agent = 'agent.id == customer.last_agent'\n",
    "[hours.support]\n",
    "days = [\"mon\", \"tue\"]\n",
    "open = \"09:00\"\nclose = \"18:00\"\n",
    "closed_dates = [\"2026-10-01\"]\n",
    "timezone = \"+08:00\"\n",
    "= = ]] '\"\n",
    "\n",
];

fn rule_file() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        prop::collection::vec(prop::sample::select(FRAGMENTS.to_vec()), 0..24)
            .prop_map(|pieces| pieces.concat()),
        // A valid file with one byte range cut out.
        (0.0..1.0f64, 0.0..1.0f64).prop_map(|(from, length)| {
            let text = include_str!("../../rules/default.toml");
            let start = floor_boundary(text, (from * text.len() as f64) as usize);
            let end = floor_boundary(text, start + (length * 200.0) as usize);
            format!("{}{}", &text[..start], &text[end..])
        }),
    ]
}

fn floor_boundary(text: &str, mut at: usize) -> usize {
    at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// Every line and column a rule error may name in `text`: a line of the
/// file (or the one after its last newline) and a column within it, or
/// just past its end.
fn check_location(text: &str, error: &RuleError) {
    let lines: Vec<&str> = text.split('\n').collect();
    assert!(
        (1..=lines.len()).contains(&error.line),
        "line {} outside the file's {} lines: {error}",
        error.line,
        lines.len()
    );
    let width = lines[error.line - 1].chars().count();
    assert!(
        (1..=width + 1).contains(&error.column),
        "column {} outside line {} of {width} characters: {error}",
        error.column,
        error.line
    );
    assert!(!error.message.trim().is_empty(), "{error:?}");
    assert!(
        error
            .to_string()
            .starts_with(&format!("rules.toml:{}:{}: ", error.line, error.column)),
        "{error}"
    );
}

// ---------------------------------------------------------------------------
// Valid expressions, with a reference model of what they mean.

/// Text fields the model knows, with how to read them.
#[derive(Debug, Clone, Copy)]
enum TextField {
    Channel,
    CustomerId,
    Tier,
    Language,
    LastAgent,
    Message,
    Digits,
    AgentId,
    AgentRole,
}

impl TextField {
    const ALL: [TextField; 9] = [
        TextField::Channel,
        TextField::CustomerId,
        TextField::Tier,
        TextField::Language,
        TextField::LastAgent,
        TextField::Message,
        TextField::Digits,
        TextField::AgentId,
        TextField::AgentRole,
    ];

    fn name(self) -> &'static str {
        match self {
            TextField::Channel => "channel",
            TextField::CustomerId => "customer.id",
            TextField::Tier => "customer.tier",
            TextField::Language => "customer.language",
            TextField::LastAgent => "customer.last_agent",
            TextField::Message => "message",
            TextField::Digits => "contact.digits",
            TextField::AgentId => "agent.id",
            TextField::AgentRole => "agent.role",
        }
    }

    fn read(self, world: &World) -> String {
        let customer = &world.contact.customer;
        match self {
            TextField::Channel => world.contact.channel.as_str().to_owned(),
            TextField::CustomerId => customer.id.to_string(),
            TextField::Tier => customer.tier.clone(),
            TextField::Language => customer.language.clone(),
            TextField::LastAgent => customer
                .last_agent
                .as_ref()
                .map_or(String::new(), |id| id.to_string()),
            TextField::Message => world.contact.message.clone(),
            TextField::Digits => world.contact.digits.clone(),
            TextField::AgentId => world.agent.id.to_string(),
            TextField::AgentRole => world.agent.role.as_str().to_owned(),
        }
    }
}

#[derive(Debug, Clone)]
enum TextTerm {
    Lit(String),
    Field(TextField),
}

#[derive(Debug, Clone)]
enum NumTerm {
    Lit(f64),
    Skill(&'static str),
}

#[derive(Debug, Clone, Copy)]
enum ListField {
    Tags,
    AgentGroups,
    AgentLanguages,
}

#[derive(Debug, Clone)]
enum Cond {
    Const(bool),
    Not(Box<Cond>),
    All(Vec<Cond>),
    Any(Vec<Cond>),
    BoolEq(Box<Cond>, Box<Cond>, bool),
    TextEq(TextTerm, TextTerm, bool),
    Compare(NumTerm, &'static str, NumTerm),
    InList(TextTerm, Vec<String>),
    NumInList(NumTerm, Vec<f64>),
    Has(ListField, TextTerm),
    Contains(TextTerm, TextTerm),
}

/// Words likely to meet the generated contact's values, plus anything.
fn word() -> impl Strategy<Value = String> {
    let known = prop::sample::select(vec![
        "vip",
        "gold",
        "web",
        "app",
        "phone",
        "wechat",
        "zh-CN",
        "en",
        "c-1",
        "alice",
        "bob",
        "expert",
        "junior",
        "退款",
        "订单",
        "complaint",
        "default",
        "",
    ])
    .prop_map(str::to_owned);
    prop_oneof![4 => known, 1 => any::<String>()]
}

fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        (0..6u8).prop_map(f64::from),
        (-1000.0..1000.0f64),
        (-1000..1000i32).prop_map(|n| f64::from(n) / 4.0),
    ]
}

const SKILLS: [&str; 4] = ["billing", "voice", "zh", "never-held"];

fn text_term() -> impl Strategy<Value = TextTerm> {
    prop_oneof![
        word().prop_map(TextTerm::Lit),
        prop::sample::select(TextField::ALL.to_vec()).prop_map(TextTerm::Field),
    ]
}

fn num_term() -> impl Strategy<Value = NumTerm> {
    prop_oneof![
        number().prop_map(NumTerm::Lit),
        prop::sample::select(SKILLS.to_vec()).prop_map(NumTerm::Skill),
    ]
}

fn cond() -> impl Strategy<Value = Cond> {
    let list_field = prop::sample::select(vec![
        ListField::Tags,
        ListField::AgentGroups,
        ListField::AgentLanguages,
    ]);
    let leaf = prop_oneof![
        any::<bool>().prop_map(Cond::Const),
        (text_term(), text_term(), any::<bool>()).prop_map(|(a, b, ne)| Cond::TextEq(a, b, ne)),
        (
            num_term(),
            prop::sample::select(vec!["==", "!=", "<", "<=", ">", ">="]),
            num_term()
        )
            .prop_map(|(a, op, b)| Cond::Compare(a, op, b)),
        (text_term(), prop::collection::vec(word(), 0..4)).prop_map(|(a, l)| Cond::InList(a, l)),
        (num_term(), prop::collection::vec(number(), 0..4))
            .prop_map(|(a, l)| Cond::NumInList(a, l)),
        (list_field, text_term()).prop_map(|(l, a)| Cond::Has(l, a)),
        (text_term(), text_term()).prop_map(|(a, b)| Cond::Contains(a, b)),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            inner.clone().prop_map(|c| Cond::Not(Box::new(c))),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Cond::All),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Cond::Any),
            (inner.clone(), inner, any::<bool>()).prop_map(|(a, b, ne)| Cond::BoolEq(
                Box::new(a),
                Box::new(b),
                ne
            )),
        ]
    })
}

/// A string literal the lexer reads back as `text`.
fn quote(text: &str) -> String {
    let mut quoted = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\t' => quoted.push_str("\\t"),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

impl TextTerm {
    fn render(&self) -> String {
        match self {
            TextTerm::Lit(text) => quote(text),
            TextTerm::Field(field) => field.name().to_owned(),
        }
    }

    fn value(&self, world: &World) -> String {
        match self {
            TextTerm::Lit(text) => text.clone(),
            TextTerm::Field(field) => field.read(world),
        }
    }
}

impl NumTerm {
    fn render(&self) -> String {
        match self {
            // `{}` writes the shortest decimal that reads back as the same
            // f64, never an exponent.
            NumTerm::Lit(number) => format!("{number}"),
            NumTerm::Skill(skill) => format!("agent.skills.{skill}"),
        }
    }

    fn value(&self, world: &World) -> f64 {
        match self {
            NumTerm::Lit(number) => *number,
            NumTerm::Skill(skill) => world.agent.skills.get(*skill).map_or(0.0, |&l| l.into()),
        }
    }
}

impl ListField {
    fn name(self) -> &'static str {
        match self {
            ListField::Tags => "customer.tags",
            ListField::AgentGroups => "agent.groups",
            ListField::AgentLanguages => "agent.languages",
        }
    }

    fn items(self, world: &World) -> Vec<String> {
        match self {
            ListField::Tags => world.contact.customer.tags.clone(),
            ListField::AgentGroups => world.agent.groups.iter().map(|g| g.to_string()).collect(),
            ListField::AgentLanguages => world.agent.languages.clone(),
        }
    }
}

impl Cond {
    /// The expression text; every operand that is not a single term is
    /// parenthesised, so precedence never decides the meaning.
    fn render(&self) -> String {
        let group = |items: &[Cond], joiner: &str| {
            let parts: Vec<String> = items.iter().map(|c| format!("({})", c.render())).collect();
            parts.join(joiner)
        };
        let list = |items: Vec<String>| format!("[{}]", items.join(", "));
        match self {
            Cond::Const(value) => value.to_string(),
            Cond::Not(inner) => format!("NOT ({})", inner.render()),
            Cond::All(items) => group(items, " AND "),
            Cond::Any(items) => group(items, " or "),
            Cond::BoolEq(a, b, ne) => format!(
                "({}) {} ({})",
                a.render(),
                if *ne { "!=" } else { "==" },
                b.render()
            ),
            Cond::TextEq(a, b, ne) => format!(
                "{} {} {}",
                a.render(),
                if *ne { "!=" } else { "==" },
                b.render()
            ),
            Cond::Compare(a, op, b) => format!("{} {op} {}", a.render(), b.render()),
            Cond::InList(a, items) => format!(
                "{} IN {}",
                a.render(),
                list(items.iter().map(|i| quote(i)).collect())
            ),
            Cond::NumInList(a, items) => format!(
                "{} in {}",
                a.render(),
                list(items.iter().map(|n| format!("{n}")).collect())
            ),
            Cond::Has(field, a) => format!("{} HAS {}", field.name(), a.render()),
            Cond::Contains(a, b) => format!("{} CONTAINS {}", a.render(), b.render()),
        }
    }

    /// What the rule language documents the expression to mean.
    fn expected(&self, world: &World) -> bool {
        match self {
            Cond::Const(value) => *value,
            Cond::Not(inner) => !inner.expected(world),
            Cond::All(items) => items.iter().all(|c| c.expected(world)),
            Cond::Any(items) => items.iter().any(|c| c.expected(world)),
            Cond::BoolEq(a, b, ne) => (a.expected(world) == b.expected(world)) != *ne,
            Cond::TextEq(a, b, ne) => (a.value(world) == b.value(world)) != *ne,
            Cond::Compare(a, op, b) => {
                let (a, b) = (a.value(world), b.value(world));
                match *op {
                    "==" => a == b,
                    "!=" => a != b,
                    "<" => a < b,
                    "<=" => a <= b,
                    ">" => a > b,
                    _ => a >= b,
                }
            }
            Cond::InList(a, items) => items.contains(&a.value(world)),
            Cond::NumInList(a, items) => items.contains(&a.value(world)),
            Cond::Has(field, a) => field.items(world).contains(&a.value(world)),
            Cond::Contains(a, b) => a.value(world).contains(&b.value(world)),
        }
    }
}

/// A contact and a candidate agent.
#[derive(Debug, Clone)]
struct World {
    contact: Contact,
    agent: Agent,
}

fn world() -> impl Strategy<Value = World> {
    let pick =
        |options: &'static [&'static str]| prop::sample::select(options).prop_map(str::to_owned);
    let customer = (
        pick(&["vip", "gold", ""]),
        pick(&["zh-CN", "en"]),
        prop::collection::vec(pick(&["vip", "complaint", "退款"]), 0..3),
        prop::option::of(pick(&["alice", "bob"])),
    );
    let agent = (
        pick(&["alice", "bob"]),
        prop::sample::select(vec![Role::Junior, Role::Expert, Role::Supervisor]),
        prop::collection::btree_map(prop::sample::select(SKILLS[..3].to_vec()), 0..6u8, 0..3),
        prop::collection::vec(pick(&["gold", "default"]), 0..3),
        prop::collection::vec(pick(&["zh-CN", "en"]), 0..3),
    );
    (
        prop::sample::select(Channel::BUILT_IN.to_vec()),
        (
            pick(&["我要退款，订单号 12345", "where is my order", ""]),
            pick(&["", "1", "2", "12"]),
        ),
        customer,
        agent,
    )
        .prop_map(
            |(channel, (message, digits), (tier, language, tags, last_agent), agent)| {
                let mut customer = Customer::new("c-1", "王小明");
                customer.tier = tier;
                customer.language = language;
                customer.tags = tags;
                customer.last_agent = last_agent.map(AgentId::new);
                let (id, role, skills, groups, languages) = agent;
                World {
                    contact: Contact {
                        channel,
                        customer,
                        message,
                        digits,
                        at: 1_772_620_200_000,
                    },
                    agent: Agent {
                        id: AgentId::new(id),
                        display_name: "A".to_owned(),
                        role,
                        skills: skills
                            .into_iter()
                            .map(|(skill, level)| (skill.to_owned(), level))
                            .collect::<BTreeMap<_, _>>(),
                        groups: groups.into_iter().map(GroupId::new).collect(),
                        languages,
                        capacity: Capacity::default(),
                        sip: None,
                    },
                }
            },
        )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_rule_file_loads_or_names_a_line_and_column(text in rule_file()) {
        match RuleSet::parse(&text, "rules.toml") {
            Ok(rules) => {
                let world = World {
                    contact: Contact {
                        channel: Channel::Web,
                        customer: Customer::new("c-1", "x"),
                        message: String::new(),
                        digits: String::new(),
                        at: 0,
                    },
                    agent: Agent {
                        id: AgentId::new("alice"),
                        display_name: "A".to_owned(),
                        role: Role::Junior,
                        skills: BTreeMap::new(),
                        groups: Vec::new(),
                        languages: Vec::new(),
                        capacity: Capacity::default(),
                        sip: None,
                    },
                };
                if let Some(plan) = rules.route(&world.contact) {
                    for step in plan.steps.iter() {
                        step.admits(&world.agent, &world.contact);
                    }
                }
            }
            Err(error) => check_location(&text, &error),
        }
    }

    #[test]
    fn a_bad_filter_is_reported_inside_the_filter(
        expression in "[a-zA-Z0-9_. ()\\[\\],\"=!<>-]{0,40}|\\PC{0,20}"
    ) {
        // A TOML literal string holds anything but `'` and line breaks.
        prop_assume!(!expression.contains(['\'', '\n', '\r']));
        let prefix = "[[rule]]\nname = \"r\"\nfilter = '";
        let text = format!("{prefix}{expression}'\n  [[rule.step]]\n  group = \"g\"\n");
        if let Err(error) = RuleSet::parse(&text, "rules.toml") {
            check_location(&text, &error);
            // TOML may refuse a control character first; any other error
            // is the expression's, on its line and within its columns.
            if !expression.chars().any(char::is_control) {
                let start = "filter = '".chars().count() + 1;
                let end = start + expression.chars().count();
                prop_assert_eq!(error.line, 3, "{}", error);
                prop_assert!((start..=end).contains(&error.column), "{}", error);
            }
        }
    }

    #[test]
    fn any_expression_text_parses_or_fails_without_panicking(text in "\\PC{0,60}") {
        for scope in [Scope::Filter, Scope::Agent] {
            if let Err(error) = parse_condition(&text, scope, &["support"]) {
                prop_assert!(error.span.start <= error.span.end, "{:?}", error);
                prop_assert!(error.span.end <= text.len(), "{:?}", error);
                prop_assert!(!error.message.is_empty());
            }
        }
    }

    #[test]
    fn generated_expressions_parse_and_mean_what_the_language_says(
        condition in cond(),
        world in world(),
    ) {
        let text = condition.render();
        let parsed = parse_condition(&text, Scope::Agent, &[])
            .map_err(|error| TestCaseError::fail(format!("{text:?}: {error:?}")))?;
        let schedule = Schedule::default();
        let env = Env::new(&world.contact, Some(&world.agent), &schedule);
        prop_assert_eq!(parsed.expr.eval(&env), condition.expected(&world), "{}", text);
        // Without an agent (a filter's view) evaluation is still total.
        parsed.expr.eval(&Env::new(&world.contact, None, &schedule));
    }
}
