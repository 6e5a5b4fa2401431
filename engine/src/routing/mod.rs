//! Routing rules: which skill groups a new contact is queued in, in which
//! order, and which agents may take it.
//!
//! A rule file (TOML, documented for admins in `docs/routing.md`) holds an
//! ordered list of rules. The first rule whose `filter` is true for the
//! contact is chosen, and its steps become the contact's [`RoutePlan`]: the
//! session waits in each step's group until the step's timeout passes, then
//! moves on to the next step keeping its place in line (overflow).
//!
//! ```text
//! TOML text ──rules──▶ RuleSet ──route(contact)──▶ RoutePlan { steps }
//!                      (expressions parsed,        Step::admits(agent, contact)
//!                       type-checked, fields        on every candidate agent
//!                       resolved to enums)
//! ```
//!
//! A waiting session's progress through its plan (current step, step
//! timeout, place in line) is a [`PlanCursor`]: pure transitions that return
//! [`PlanEffect`]s for the session actor to carry out.
//!
//! Expressions are parsed (`lexer`, `parser`) and type-checked into an `expr`
//! tree once, when the file is loaded (`rules`); evaluation (`eval`) is total,
//! allocation-free and never looks a field up by name. Errors name the file,
//! line and column.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::Millis;
use crate::agent::Agent;
use crate::channel::{Channel, ChannelRegistry};
use crate::customer::Customer;
use crate::ids::{AgentId, GroupId};

mod eval;
mod expr;
mod hours;
mod lexer;
mod parser;
mod plan;
mod response;
mod rules;
mod span;

use eval::Env;
use expr::BoolExpr;
use hours::Schedule;
use span::Location;

pub use plan::{PlanCursor, PlanEffect};
pub use response::{DEFAULT_RESPONSE_MS, ResponseKind, ResponsePolicy};

/// A new contact, as the rules see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    /// Where the contact came from (`channel` in rules).
    pub channel: Channel,
    /// The customer's profile (`customer.*` in rules).
    pub customer: Customer,
    /// The first message's text (`message` in rules), for keyword routing.
    pub message: String,
    /// What a caller keyed in an IVR menu before queueing (`contact.digits`
    /// in rules), `""` for none and for every other channel.
    pub digits: String,
    /// When the contact arrived; `time.*` and `hours.*` are evaluated at this moment.
    pub at: Millis,
}

/// A loaded, type-checked rule file. Cloning shares it.
#[derive(Debug, Clone)]
pub struct RuleSet {
    inner: Arc<RuleSetInner>,
}

#[derive(Debug)]
struct RuleSetInner {
    file: String,
    rules: Vec<Rule>,
    /// The file's timezone and business hours, for `time.*` and `hours.*`.
    schedule: Arc<Schedule>,
    /// Every group referenced, first appearance first, without repeats.
    groups: Vec<GroupId>,
    /// Where each step's `group` was written, for [`RuleSet::validate`].
    group_refs: Vec<(GroupId, Location)>,
    /// String literals compared with `channel`, for [`RuleSet::validate`].
    channel_refs: Vec<(Arc<str>, Location)>,
    /// The `[[response]]` tables, in file order.
    responses: Vec<response::ResponseRule>,
}

#[derive(Debug)]
struct Rule {
    filter: BoolExpr,
    plan: RoutePlan,
}

/// The chosen rule's steps for one contact. Cloning is two reference-count bumps.
#[derive(Debug, Clone)]
pub struct RoutePlan {
    /// The rule's `name`, for logs and metrics.
    pub rule: Arc<str>,
    /// Tried in order; see [`Step`].
    pub steps: Arc<[Step]>,
}

/// One target of a rule: a group, who in it may take the contact, the
/// contact's priority there and how long to wait before moving on.
#[derive(Debug, Clone)]
pub struct Step {
    /// The skill group whose queue holds the session during this step.
    pub group: GroupId,
    /// Higher is served first; sessions of equal priority are served by first queue time.
    pub priority: i32,
    /// How long to wait in this step, counted from entering it, before
    /// overflowing to the next step; `None` waits forever (only the last step may).
    pub timeout_ms: Option<Millis>,
    /// The step targets only the customer's last agent within `group`.
    pub sticky: bool,
    /// Set by a transfer to one agent: only that agent is admitted.
    pub only_agent: Option<AgentId>,
    agent: Option<Arc<AgentCondition>>,
}

/// A step's `agent` expression with the clock it needs.
#[derive(Debug)]
struct AgentCondition {
    source: Box<str>,
    expr: BoolExpr,
    schedule: Arc<Schedule>,
}

/// A rule file that cannot be used, with the place to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct RuleError {
    /// The file name given to [`RuleSet::parse`].
    pub file: String,
    /// 1-based line in the file.
    pub line: usize,
    /// 1-based column in the file, in characters.
    pub column: usize,
    /// What is wrong, lowercase, no trailing period.
    pub message: String,
}

impl RoutePlan {
    /// The group a contact waits in when no rule matches.
    pub const FALLBACK_GROUP: &'static str = "default";

    /// A plan of one step.
    pub fn single(step: Step) -> RoutePlan {
        RoutePlan {
            rule: Arc::from("direct"),
            steps: Arc::from([step]),
        }
    }

    /// The plan for a contact no rule matched: wait in [`RoutePlan::FALLBACK_GROUP`].
    pub fn fallback() -> RoutePlan {
        RoutePlan {
            rule: Arc::from("fallback"),
            steps: Arc::from([Step::to_group(GroupId::new(Self::FALLBACK_GROUP), 0)]),
        }
    }
}

impl RuleSet {
    /// Parses and type-checks a rule file. `file_name` only labels errors.
    pub fn parse(source: &str, file_name: &str) -> Result<RuleSet, RuleError> {
        let inner = rules::load(source, file_name)?;
        Ok(RuleSet {
            inner: Arc::new(inner),
        })
    }

    /// Checks the file against the deployment: every step's `group` must
    /// exist, and every channel name compared with `channel` must be a
    /// built-in or declared channel. Errors point at where the name was written.
    pub fn validate(
        &self,
        groups: &dyn Fn(&str) -> bool,
        channels: &ChannelRegistry,
    ) -> Result<(), RuleError> {
        let error = |location: Location, message: String| RuleError {
            file: self.inner.file.clone(),
            line: location.line,
            column: location.column,
            message,
        };
        for (group, location) in &self.inner.group_refs {
            if !groups(group.as_str()) {
                let unknown = crate::EngineError::UnknownGroup(group.to_string());
                return Err(error(*location, unknown.to_string()));
            }
        }
        for (name, location) in &self.inner.channel_refs {
            if let Err(unknown) = channels.resolve(name) {
                return Err(error(*location, unknown.to_string()));
            }
        }
        Ok(())
    }

    /// The rules shipped with the engine (`engine/rules/default.toml`): VIP →
    /// `gold_service`, phone → `phone_support`, everyone else → `default`.
    pub fn default_rules() -> RuleSet {
        RuleSet::parse(include_str!("../../rules/default.toml"), "default.toml")
            .expect("the built-in rules/default.toml is valid; a test parses it")
    }

    /// The plan of the first rule whose filter is true, or `None` when no rule
    /// matches (a file without a catch-all rule); the caller then queues the
    /// contact in its fallback group.
    pub fn route(&self, contact: &Contact) -> Option<RoutePlan> {
        let env = Env::new(contact, None, &self.inner.schedule);
        self.inner
            .rules
            .iter()
            .find(|rule| rule.filter.eval(&env))
            .map(|rule| rule.plan.clone())
    }

    /// Every group the rules refer to, each once, in the order they first appear.
    pub fn groups(&self) -> impl Iterator<Item = &GroupId> {
        self.inner.groups.iter()
    }

    /// The file name the rules were loaded from.
    pub fn file_name(&self) -> &str {
        &self.inner.file
    }

    /// The step `parts` describe, its `agent` expression compiled against
    /// these rules' calendars: how a step crosses from one node to another.
    /// Fails only if these rules lack a calendar the expression names
    /// (nodes running different rule files).
    pub fn step_from_parts(&self, parts: StepParts) -> Result<Step, String> {
        let agent = match parts.agent {
            None => None,
            Some(source) => {
                let schedule = &self.inner.schedule;
                let calendars: Vec<&str> = schedule.calendars.iter().map(|c| &*c.name).collect();
                let parsed = parser::parse_condition(&source, parser::Scope::Agent, &calendars)
                    .map_err(|error| format!("agent expression `{source}`: {}", error.message))?;
                Some(Arc::new(AgentCondition {
                    source: source.into(),
                    expr: parsed.expr,
                    schedule: Arc::clone(schedule),
                }))
            }
        };
        Ok(Step {
            group: parts.group,
            priority: parts.priority,
            timeout_ms: parts.timeout_ms,
            sticky: parts.sticky,
            only_agent: parts.only_agent,
            agent,
        })
    }
}

/// A [`Step`] as plain data: its `agent` expression as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepParts {
    /// See [`Step::group`].
    pub group: GroupId,
    /// See [`Step::priority`].
    pub priority: i32,
    /// See [`Step::timeout_ms`].
    pub timeout_ms: Option<Millis>,
    /// See [`Step::sticky`].
    pub sticky: bool,
    /// See [`Step::only_agent`].
    pub only_agent: Option<AgentId>,
    /// The `agent` expression's source.
    pub agent: Option<String>,
}

impl Step {
    /// Whether `agent` may be offered `contact` under this step: the step's
    /// `agent` expression holds and, for a sticky step, the agent is the
    /// customer's last agent. Group membership and capacity are the queue's
    /// business, not checked here. Allocates nothing.
    pub fn admits(&self, agent: &Agent, contact: &Contact) -> bool {
        if self.sticky && contact.customer.last_agent.as_ref() != Some(&agent.id) {
            return false;
        }
        if self
            .only_agent
            .as_ref()
            .is_some_and(|only| only != &agent.id)
        {
            return false;
        }
        match &self.agent {
            None => true,
            Some(condition) => {
                condition
                    .expr
                    .eval(&Env::new(contact, Some(agent), &condition.schedule))
            }
        }
    }

    /// Whether the step is used for `contact` at all: a sticky step is
    /// skipped when the customer has no last agent.
    pub fn applies_to(&self, contact: &Contact) -> bool {
        !self.sticky || contact.customer.last_agent.is_some()
    }

    /// A step that waits in `group` for any member, without timeout: a
    /// transfer to a group, or the fallback when no rule matches.
    pub fn to_group(group: GroupId, priority: i32) -> Step {
        Step {
            group,
            priority,
            timeout_ms: None,
            sticky: false,
            only_agent: None,
            agent: None,
        }
    }

    /// A step that waits in `group` for `agent` only: a transfer to an agent.
    pub fn to_agent(group: GroupId, agent: AgentId, priority: i32) -> Step {
        Step {
            only_agent: Some(agent),
            ..Step::to_group(group, priority)
        }
    }

    /// The step's `agent` expression as written, if it has one.
    pub fn agent_expression(&self) -> Option<&str> {
        self.agent.as_ref().map(|condition| &*condition.source)
    }

    /// The step as plain data ([`RuleSet::step_from_parts`] rebuilds it).
    pub fn parts(&self) -> StepParts {
        StepParts {
            group: self.group.clone(),
            priority: self.priority,
            timeout_ms: self.timeout_ms,
            sticky: self.sticky,
            only_agent: self.only_agent.clone(),
            agent: self.agent_expression().map(str::to_string),
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.group)?;
        if self.sticky {
            f.write_str(" (last agent)")?;
        }
        if let Some(expression) = self.agent_expression() {
            write!(f, " where {expression}")?;
        }
        match self.timeout_ms {
            Some(ms) => write!(f, ", priority {}, for {} s", self.priority, ms / 1000),
            None => write!(f, ", priority {}, until answered", self.priority),
        }
    }
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
