//! Parses an expression into a syntax tree, then type-checks it into the
//! typed tree that [`super::eval`] runs. Field names are resolved here, once,
//! so that evaluation never looks a field up by name.
//!
//! Grammar, loosest first (NOT binds tighter than comparisons, as the rule
//! language documents):
//!
//! ```text
//! or      := and (OR and)*
//! and     := compare (AND compare)*
//! compare := unary (op unary)?        op: == != < <= > >= IN HAS CONTAINS
//! unary   := NOT unary | primary
//! primary := literal | field | '(' or ')' | '[' (literal (',' literal)*)? ']'
//! ```

use std::ops::Range;
use std::sync::Arc;

use super::expr::{BoolExpr, CompareOp, Num, Text, TextField, TextList};
use super::lexer::{Token, TokenKind, tokenize};

/// A problem at a byte range of the expression text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ExprError {
    pub(crate) span: Range<usize>,
    pub(crate) message: String,
}

impl ExprError {
    pub(crate) fn new(span: Range<usize>, message: impl Into<String>) -> Self {
        ExprError {
            span,
            message: message.into(),
        }
    }
}

/// Parentheses and NOTs deeper than this are refused, so that a hostile rule
/// file cannot overflow the stack.
const MAX_DEPTH: usize = 32;

/// Where an expression is used: a filter sees the contact, a step's `agent`
/// expression sees the contact and the candidate agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    Filter,
    Agent,
}

/// A parsed, type-checked condition plus what validation needs later.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub(crate) expr: BoolExpr,
    /// String literals compared with `channel`, with their spans, so that
    /// validation can report an unknown channel where it was written.
    pub(crate) channel_literals: Vec<(Arc<str>, Range<usize>)>,
}

/// Parses and type-checks a condition. `calendars` are the declared
/// business-hours names; `hours.<name>` resolves to the index in it.
pub(crate) fn parse_condition(
    source: &str,
    scope: Scope,
    calendars: &[&str],
) -> Result<Parsed, ExprError> {
    let tokens = tokenize(source)?;
    let mut parser = Parser {
        tokens: &tokens,
        pos: 0,
        depth: 0,
        end: source.len(),
    };
    let node = parser.parse_or()?;
    if let Some(token) = parser.peek() {
        return Err(ExprError::new(
            token.span.clone(),
            format!(
                "unexpected {} after a complete expression",
                token.kind.describe()
            ),
        ));
    }
    let mut checker = Checker {
        scope,
        calendars,
        channel_literals: Vec::new(),
    };
    let typed = checker.check(&node)?;
    let Typed::Bool(expr) = typed else {
        let what = match scope {
            Scope::Filter => "a filter",
            Scope::Agent => "an agent expression",
        };
        return Err(ExprError::new(
            node.span,
            format!(
                "{what} must be a condition (true/false), found {}",
                typed.type_name()
            ),
        ));
    };
    Ok(Parsed {
        expr,
        channel_literals: checker.channel_literals,
    })
}

/// The untyped syntax tree.
#[derive(Debug)]
struct Node {
    kind: NodeKind,
    span: Range<usize>,
}

#[derive(Debug)]
enum NodeKind {
    Bool(bool),
    Str(Arc<str>),
    Num(f64),
    Field(Arc<str>),
    List(Vec<Node>),
    Not(Box<Node>),
    And(Vec<Node>),
    Or(Vec<Node>),
    Binary {
        op: BinaryOp,
        op_span: Range<usize>,
        lhs: Box<Node>,
        rhs: Box<Node>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BinaryOp {
    Compare(CompareOp),
    In,
    Has,
    Contains,
}

impl BinaryOp {
    fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Compare(CompareOp::Eq) => "==",
            BinaryOp::Compare(CompareOp::Ne) => "!=",
            BinaryOp::Compare(CompareOp::Lt) => "<",
            BinaryOp::Compare(CompareOp::Le) => "<=",
            BinaryOp::Compare(CompareOp::Gt) => ">",
            BinaryOp::Compare(CompareOp::Ge) => ">=",
            BinaryOp::In => "IN",
            BinaryOp::Has => "HAS",
            BinaryOp::Contains => "CONTAINS",
        }
    }

    fn from_token(kind: &TokenKind) -> Option<BinaryOp> {
        Some(match kind {
            TokenKind::Eq => BinaryOp::Compare(CompareOp::Eq),
            TokenKind::Ne => BinaryOp::Compare(CompareOp::Ne),
            TokenKind::Lt => BinaryOp::Compare(CompareOp::Lt),
            TokenKind::Le => BinaryOp::Compare(CompareOp::Le),
            TokenKind::Gt => BinaryOp::Compare(CompareOp::Gt),
            TokenKind::Ge => BinaryOp::Compare(CompareOp::Ge),
            TokenKind::In => BinaryOp::In,
            TokenKind::Has => BinaryOp::Has,
            TokenKind::Contains => BinaryOp::Contains,
            _ => return None,
        })
    }
}

struct Parser<'a> {
    tokens: &'a [Token],
    pos: usize,
    depth: usize,
    /// Length of the source, where "end of expression" errors point.
    end: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn eat(&mut self, kind: &TokenKind) -> Option<Range<usize>> {
        let token = self.peek().filter(|token| &token.kind == kind)?;
        let span = token.span.clone();
        self.pos += 1;
        Some(span)
    }

    fn expected(&self, what: &str) -> ExprError {
        match self.peek() {
            Some(token) => ExprError::new(
                token.span.clone(),
                format!("expected {what}, found {}", token.kind.describe()),
            ),
            None => ExprError::new(
                self.end..self.end,
                format!("expected {what}, found the end of the expression"),
            ),
        }
    }

    fn parse_or(&mut self) -> Result<Node, ExprError> {
        self.parse_chain(&TokenKind::Or, Self::parse_and, NodeKind::Or)
    }

    fn parse_and(&mut self) -> Result<Node, ExprError> {
        self.parse_chain(&TokenKind::And, Self::parse_compare, NodeKind::And)
    }

    /// `item (joiner item)*`, kept flat so that long chains do not nest deeply.
    fn parse_chain(
        &mut self,
        joiner: &TokenKind,
        item: fn(&mut Self) -> Result<Node, ExprError>,
        build: fn(Vec<Node>) -> NodeKind,
    ) -> Result<Node, ExprError> {
        let first = item(self)?;
        if self.peek().map(|token| &token.kind) != Some(joiner) {
            return Ok(first);
        }
        let start = first.span.start;
        let mut items = vec![first];
        while self.eat(joiner).is_some() {
            items.push(item(self)?);
        }
        let end = items.last().map_or(start, |node| node.span.end);
        Ok(Node {
            kind: build(items),
            span: start..end,
        })
    }

    fn parse_compare(&mut self) -> Result<Node, ExprError> {
        let lhs = self.parse_unary()?;
        let Some(op) = self
            .peek()
            .and_then(|token| BinaryOp::from_token(&token.kind))
        else {
            return Ok(lhs);
        };
        let op_span = self.tokens[self.pos].span.clone();
        self.pos += 1;
        let rhs = self.parse_unary()?;
        if let Some(token) = self.peek()
            && BinaryOp::from_token(&token.kind).is_some()
        {
            return Err(ExprError::new(
                token.span.clone(),
                "comparisons cannot be chained; add parentheses",
            ));
        }
        let span = lhs.span.start..rhs.span.end;
        Ok(Node {
            kind: NodeKind::Binary {
                op,
                op_span,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
            },
            span,
        })
    }

    fn nest(&mut self, at: &Range<usize>) -> Result<(), ExprError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ExprError::new(
                at.clone(),
                format!("expression nested more than {MAX_DEPTH} levels deep"),
            ));
        }
        Ok(())
    }

    fn parse_unary(&mut self) -> Result<Node, ExprError> {
        let Some(not_span) = self.eat(&TokenKind::Not) else {
            return self.parse_primary();
        };
        self.nest(&not_span)?;
        let operand = self.parse_unary()?;
        self.depth -= 1;
        let span = not_span.start..operand.span.end;
        Ok(Node {
            kind: NodeKind::Not(Box::new(operand)),
            span,
        })
    }

    fn parse_primary(&mut self) -> Result<Node, ExprError> {
        let Some(token) = self.peek() else {
            return Err(self.expected("an expression"));
        };
        let span = token.span.clone();
        let kind = match &token.kind {
            TokenKind::LParen => {
                self.pos += 1;
                self.nest(&span)?;
                let inner = self.parse_or()?;
                self.depth -= 1;
                let close = self
                    .eat(&TokenKind::RParen)
                    .ok_or_else(|| self.expected("`)` to close the `(`"))?;
                // The node keeps the parenthesised span so errors underline all of it.
                return Ok(Node {
                    kind: inner.kind,
                    span: span.start..close.end,
                });
            }
            TokenKind::LBracket => return self.parse_list(),
            TokenKind::True => NodeKind::Bool(true),
            TokenKind::False => NodeKind::Bool(false),
            TokenKind::Str(text) => NodeKind::Str(text.clone()),
            TokenKind::Num(number) => NodeKind::Num(*number),
            TokenKind::Ident(name) => NodeKind::Field(name.clone()),
            _ => return Err(self.expected("an expression")),
        };
        self.pos += 1;
        Ok(Node { kind, span })
    }

    fn parse_list(&mut self) -> Result<Node, ExprError> {
        let open = self.eat(&TokenKind::LBracket).unwrap_or(0..0);
        let mut items = Vec::new();
        loop {
            if let Some(close) = self.eat(&TokenKind::RBracket) {
                return Ok(Node {
                    kind: NodeKind::List(items),
                    span: open.start..close.end,
                });
            }
            let Some(token) = self.peek() else {
                return Err(self.expected("`]` to close the list"));
            };
            let kind = match &token.kind {
                TokenKind::Str(text) => NodeKind::Str(text.clone()),
                TokenKind::Num(number) => NodeKind::Num(*number),
                _ => return Err(self.expected("a string or number in the list")),
            };
            items.push(Node {
                kind,
                span: token.span.clone(),
            });
            self.pos += 1;
            if self.eat(&TokenKind::Comma).is_none()
                && self.peek().map(|token| &token.kind) != Some(&TokenKind::RBracket)
            {
                return Err(self.expected("`,` or `]` in the list"));
            }
        }
    }
}

/// The type of a checked sub-expression.
enum Typed {
    Bool(BoolExpr),
    Text(Text),
    Num(Num),
    TextList(TextList),
    NumList(Arc<[f64]>),
    /// `[]`: a list of anything, holding nothing.
    EmptyList,
}

impl Typed {
    fn type_name(&self) -> &'static str {
        match self {
            Typed::Bool(_) => "a condition",
            Typed::Text(_) => "text",
            Typed::Num(_) => "a number",
            Typed::TextList(_) => "a list of text",
            Typed::NumList(_) => "a list of numbers",
            Typed::EmptyList => "an empty list",
        }
    }

    fn is_list(&self) -> bool {
        matches!(
            self,
            Typed::TextList(_) | Typed::NumList(_) | Typed::EmptyList
        )
    }
}

/// Every field name, for "did you mean"; `<…>` marks the pattern fields.
const FIELD_NAMES: [&str; 16] = [
    "channel",
    "customer.id",
    "customer.tier",
    "customer.tags",
    "customer.language",
    "customer.last_agent",
    "message",
    "contact.digits",
    "time.hour",
    "time.weekday",
    "agent.id",
    "agent.role",
    "agent.groups",
    "agent.languages",
    "agent.skills.<skill>",
    "hours.<name>",
];

/// The fields with a fixed name, and their types.
fn fixed_field(name: &str) -> Option<Typed> {
    let text = |field| Some(Typed::Text(Text::Field(field)));
    match name {
        "channel" => text(TextField::Channel),
        "customer.id" => text(TextField::CustomerId),
        "customer.tier" => text(TextField::CustomerTier),
        "customer.tags" => Some(Typed::TextList(TextList::CustomerTags)),
        "customer.language" => text(TextField::CustomerLanguage),
        "customer.last_agent" => text(TextField::CustomerLastAgent),
        "message" => text(TextField::Message),
        "contact.digits" => text(TextField::Digits),
        "time.hour" => Some(Typed::Num(Num::TimeHour)),
        "time.weekday" => text(TextField::TimeWeekday),
        "agent.id" => text(TextField::AgentId),
        "agent.role" => text(TextField::AgentRole),
        "agent.groups" => Some(Typed::TextList(TextList::AgentGroups)),
        "agent.languages" => Some(Typed::TextList(TextList::AgentLanguages)),
        _ => None,
    }
}

struct Checker<'a> {
    scope: Scope,
    calendars: &'a [&'a str],
    channel_literals: Vec<(Arc<str>, Range<usize>)>,
}

impl Checker<'_> {
    fn check(&mut self, node: &Node) -> Result<Typed, ExprError> {
        Ok(match &node.kind {
            NodeKind::Bool(value) => Typed::Bool(BoolExpr::Const(*value)),
            NodeKind::Str(text) => Typed::Text(Text::Lit(text.clone())),
            NodeKind::Num(number) => Typed::Num(Num::Lit(*number)),
            NodeKind::Field(name) => self.field(name, &node.span)?,
            NodeKind::List(items) => list(items)?,
            NodeKind::Not(operand) => {
                let typed = self.check(operand)?;
                let Typed::Bool(inner) = typed else {
                    let found = typed.type_name();
                    return Err(ExprError::new(
                        operand.span.clone(),
                        format!(
                            "`NOT` needs a condition (true/false), found {found}; \
                             NOT binds tighter than comparisons, so write `NOT (a == b)`"
                        ),
                    ));
                };
                Typed::Bool(BoolExpr::Not(Box::new(inner)))
            }
            NodeKind::And(items) => Typed::Bool(BoolExpr::All(self.conditions("AND", items)?)),
            NodeKind::Or(items) => Typed::Bool(BoolExpr::Any(self.conditions("OR", items)?)),
            NodeKind::Binary {
                op,
                op_span,
                lhs,
                rhs,
            } => Typed::Bool(self.binary(*op, op_span, lhs, rhs)?),
        })
    }

    fn conditions(&mut self, joiner: &str, items: &[Node]) -> Result<Box<[BoolExpr]>, ExprError> {
        items
            .iter()
            .map(|item| match self.check(item)? {
                Typed::Bool(expr) => Ok(expr),
                other => Err(ExprError::new(
                    item.span.clone(),
                    format!(
                        "`{joiner}` needs a condition (true/false) on each side, found {}",
                        other.type_name()
                    ),
                )),
            })
            .collect()
    }

    fn binary(
        &mut self,
        op: BinaryOp,
        op_span: &Range<usize>,
        lhs_node: &Node,
        rhs_node: &Node,
    ) -> Result<BoolExpr, ExprError> {
        let lhs = self.check(lhs_node)?;
        let rhs = self.check(rhs_node)?;
        let symbol = op.symbol();
        let mismatch = |lhs: &Typed, rhs: &Typed| {
            ExprError::new(
                op_span.clone(),
                format!(
                    "`{symbol}` cannot compare {} with {}",
                    lhs.type_name(),
                    rhs.type_name()
                ),
            )
        };
        match op {
            BinaryOp::Compare(compare) => {
                let equality = matches!(compare, CompareOp::Eq | CompareOp::Ne);
                let negate = |expr: BoolExpr| match compare {
                    CompareOp::Ne => BoolExpr::Not(Box::new(expr)),
                    _ => expr,
                };
                match (lhs, rhs) {
                    (Typed::Num(a), Typed::Num(b)) => Ok(BoolExpr::NumCompare(compare, a, b)),
                    (lhs, rhs) if lhs.is_list() || rhs.is_list() => Err(ExprError::new(
                        op_span.clone(),
                        format!("`{symbol}` cannot compare lists; use `IN` or `HAS`"),
                    )),
                    (Typed::Text(a), Typed::Text(b)) if equality => {
                        self.note_channel_literal(&a, &b, rhs_node);
                        self.note_channel_literal(&b, &a, lhs_node);
                        Ok(negate(BoolExpr::TextEq(a, b)))
                    }
                    (Typed::Bool(a), Typed::Bool(b)) if equality => {
                        Ok(negate(BoolExpr::BoolEq(Box::new(a), Box::new(b))))
                    }
                    (lhs, rhs)
                        if !equality
                            && std::mem::discriminant(&lhs) == std::mem::discriminant(&rhs) =>
                    {
                        Err(ExprError::new(
                            op_span.clone(),
                            format!(
                                "`{symbol}` needs numbers on both sides, found {}",
                                lhs.type_name()
                            ),
                        ))
                    }
                    (lhs, rhs) => Err(mismatch(&lhs, &rhs)),
                }
            }
            BinaryOp::In => self.membership(symbol, lhs, lhs_node, rhs, rhs_node, op_span),
            BinaryOp::Has => self.membership(symbol, rhs, rhs_node, lhs, lhs_node, op_span),
            BinaryOp::Contains => match (lhs, rhs) {
                (Typed::Text(haystack), Typed::Text(needle)) => {
                    Ok(BoolExpr::Contains(haystack, needle))
                }
                (lhs, rhs) => {
                    let (node, found) = match lhs {
                        Typed::Text(_) => (rhs_node, rhs),
                        _ => (lhs_node, lhs),
                    };
                    let hint = if found.is_list() {
                        "; use `HAS` to test whether a list holds an item"
                    } else {
                        ""
                    };
                    Err(ExprError::new(
                        node.span.clone(),
                        format!(
                            "`CONTAINS` needs text on both sides, found {}{hint}",
                            found.type_name()
                        ),
                    ))
                }
            },
        }
    }

    /// `item IN list` and `list HAS item`.
    fn membership(
        &mut self,
        symbol: &str,
        item: Typed,
        item_node: &Node,
        list: Typed,
        list_node: &Node,
        op_span: &Range<usize>,
    ) -> Result<BoolExpr, ExprError> {
        let side = |is_list_side: bool| match (symbol, is_list_side) {
            ("IN", true) | ("HAS", false) => "right",
            _ => "left",
        };
        if !list.is_list() {
            return Err(ExprError::new(
                list_node.span.clone(),
                format!(
                    "`{symbol}` needs a list on its {}, found {}",
                    side(true),
                    list.type_name()
                ),
            ));
        }
        if !matches!(item, Typed::Text(_) | Typed::Num(_)) {
            return Err(ExprError::new(
                item_node.span.clone(),
                format!(
                    "`{symbol}` needs text or a number on its {}, found {}",
                    side(false),
                    item.type_name()
                ),
            ));
        }
        match (item, list) {
            (_, Typed::EmptyList) => Ok(BoolExpr::Const(false)),
            (Typed::Text(item), Typed::TextList(list)) => {
                if let (Text::Field(TextField::Channel), NodeKind::List(items)) =
                    (&item, &list_node.kind)
                {
                    for node in items {
                        if let NodeKind::Str(name) = &node.kind {
                            self.channel_literals
                                .push((name.clone(), node.span.clone()));
                        }
                    }
                }
                Ok(BoolExpr::TextIn(item, list))
            }
            (Typed::Num(item), Typed::NumList(list)) => Ok(BoolExpr::NumIn(item, list)),
            (item, list) => Err(ExprError::new(
                op_span.clone(),
                format!(
                    "`{symbol}` cannot look for {} in {}",
                    item.type_name(),
                    list.type_name()
                ),
            )),
        }
    }

    fn note_channel_literal(&mut self, field: &Text, literal: &Text, literal_node: &Node) {
        if let (Text::Field(TextField::Channel), Text::Lit(name)) = (field, literal) {
            self.channel_literals
                .push((name.clone(), literal_node.span.clone()));
        }
    }

    fn field(&self, name: &str, span: &Range<usize>) -> Result<Typed, ExprError> {
        let is_agent_field = name.starts_with("agent.");
        let resolved = if let Some(skill) = name.strip_prefix("agent.skills.") {
            Some(Typed::Num(Num::AgentSkill(Arc::from(skill))))
        } else if let Some(calendar) = name.strip_prefix("hours.") {
            let Some(index) = self.calendars.iter().position(|c| *c == calendar) else {
                let suggestion = did_you_mean(calendar, self.calendars.iter().copied())
                    .map(|c| format!("did you mean `hours.{c}`?"))
                    .unwrap_or_else(|| format!("declare it with [hours.{calendar}]"));
                return Err(ExprError::new(
                    span.clone(),
                    format!("unknown business hours `{name}` ({suggestion})"),
                ));
            };
            Some(Typed::Bool(BoolExpr::Hours(index)))
        } else {
            fixed_field(name)
        };
        match resolved {
            Some(_) if is_agent_field && self.scope == Scope::Filter => Err(ExprError::new(
                span.clone(),
                format!(
                    "`{name}` is an agent field; it is only allowed in a step's `agent` expression"
                ),
            )),
            Some(typed) => Ok(typed),
            None => {
                let suggestion = did_you_mean(name, FIELD_NAMES.iter().copied())
                    .map(|field| format!(" (did you mean `{field}`?)"))
                    .unwrap_or_default();
                Err(ExprError::new(
                    span.clone(),
                    format!("unknown field `{name}`{suggestion}"),
                ))
            }
        }
    }
}

fn list(items: &[Node]) -> Result<Typed, ExprError> {
    let Some(first) = items.first() else {
        return Ok(Typed::EmptyList);
    };
    let numbers = matches!(first.kind, NodeKind::Num(_));
    if let Some(odd) = items
        .iter()
        .find(|node| matches!(node.kind, NodeKind::Num(_)) != numbers)
    {
        return Err(ExprError::new(
            odd.span.clone(),
            "a list must hold only text or only numbers",
        ));
    }
    if numbers {
        let numbers = items.iter().filter_map(|node| match node.kind {
            NodeKind::Num(number) => Some(number),
            _ => None,
        });
        return Ok(Typed::NumList(numbers.collect()));
    }
    let texts = items.iter().filter_map(|node| match &node.kind {
        NodeKind::Str(text) => Some(text.clone()),
        _ => None,
    });
    Ok(Typed::TextList(TextList::Lit(texts.collect())))
}

/// The closest candidate within a small edit distance, compared ignoring case.
pub(crate) fn did_you_mean<'a>(
    wrong: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    let wrong = wrong.to_ascii_lowercase();
    candidates
        .map(|candidate| {
            let lower = candidate.to_ascii_lowercase();
            // `agent.skills` alone is one segment short of `agent.skills.<skill>`.
            let is_prefix = lower.starts_with(&wrong) && lower[wrong.len()..].starts_with(".<");
            let distance = if is_prefix {
                0
            } else {
                edit_distance(&wrong, &lower)
            };
            (distance, candidate)
        })
        .filter(|(distance, candidate)| *distance <= 2.max(candidate.len() / 4))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != *cb);
            current.push(substitute.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}
