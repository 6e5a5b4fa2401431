//! The typed expression tree: what the parser's type check produces and
//! [`super::eval`] runs. Fields are enum variants, resolved once at load time.

use std::sync::Arc;

/// A type-checked condition, ready to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum BoolExpr {
    Const(bool),
    /// Inside the business-hours calendar with this index.
    Hours(usize),
    Not(Box<BoolExpr>),
    All(Box<[BoolExpr]>),
    Any(Box<[BoolExpr]>),
    BoolEq(Box<BoolExpr>, Box<BoolExpr>),
    TextEq(Text, Text),
    NumCompare(CompareOp, Num, Num),
    TextIn(Text, TextList),
    NumIn(Num, Arc<[f64]>),
    Contains(Text, Text),
}

/// A text value: a literal or a field.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Text {
    Lit(Arc<str>),
    Field(TextField),
}

/// Text fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TextField {
    Channel,
    CustomerId,
    CustomerTier,
    CustomerLanguage,
    CustomerLastAgent,
    Message,
    Digits,
    TimeWeekday,
    AgentId,
    AgentRole,
}

/// A number: a literal or a field.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Num {
    Lit(f64),
    TimeHour,
    /// `agent.skills.<name>`; 0 when the agent lacks the skill.
    AgentSkill(Arc<str>),
}

/// A list of text: a literal or a field.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TextList {
    Lit(Arc<[Arc<str>]>),
    CustomerTags,
    AgentGroups,
    AgentLanguages,
}

/// Number comparisons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}
