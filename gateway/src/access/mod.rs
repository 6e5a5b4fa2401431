//! Who is calling, and what they may reach. REST handlers and WebSocket
//! upgrades both start from a [`Caller`].
//!
//! - a customer reaches only their own customer record and sessions;
//! - an agent reads sessions offered or assigned to them, and acts on them
//!   (the actors enforce the acting part);
//! - a supervisor also reads every session, queue and agent of their groups;
//! - an admin reads everything and changes configuration (rules).
//!
//! A customer asking for someone else's session gets the same `404` as for
//! a session that does not exist, so ids cannot be probed.

pub mod customers;

use axum::extract::{FromRequestParts, Query};
use axum::http::StatusCode;
use axum::http::request::Parts;
use engine::agent::Agent;
use engine::ids::{AgentId, CustomerId, GroupId};
use engine::session::Session;
use engine::supervision::Actor;
use serde::Deserialize;

use crate::auth::{Claims, Role, TokenError, unix_now};
use crate::error::HttpError;
use crate::state::AppState;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The verified token content.
    pub claims: Claims,
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// The bearer token of a request: the `Authorization: Bearer` header, or a
/// `token` query parameter (browsers cannot set headers on WebSockets).
pub fn bearer_token(parts: &Parts) -> Option<String> {
    if let Some(header) = parts.headers.get(axum::http::header::AUTHORIZATION) {
        let value = header.to_str().ok()?;
        return bearer_credentials(value).map(str::to_string);
    }
    Query::<TokenQuery>::try_from_uri(&parts.uri)
        .ok()
        .and_then(|query| query.0.token)
}

/// The token of an `Authorization` header value using the `Bearer` scheme.
/// The scheme is case-insensitive (RFC 7235 §2.1) and any run of spaces or
/// tabs may separate it from the token; another scheme, or none, is `None`.
pub fn bearer_credentials(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once([' ', '\t'])?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, HttpError> {
        let token = bearer_token(parts).ok_or(TokenError::Missing)?;
        let claims = state.signer.verify(&token, unix_now())?;
        Ok(Caller { claims })
    }
}

impl Caller {
    /// The role.
    pub fn role(&self) -> Role {
        self.claims.role
    }

    /// Admins only.
    pub fn require_admin(&self) -> Result<(), HttpError> {
        match self.role() {
            Role::Admin => Ok(()),
            _ => Err(HttpError::forbidden("this needs an admin token")),
        }
    }

    /// Agents, supervisors and admins.
    pub fn require_staff(&self) -> Result<(), HttpError> {
        match self.role().is_staff() {
            true => Ok(()),
            false => Err(HttpError::forbidden(
                "this needs an agent, supervisor or admin token",
            )),
        }
    }

    /// The customer this token is for, if it is a customer token.
    pub fn customer_id(&self) -> Option<CustomerId> {
        (self.role() == Role::Customer).then(|| CustomerId::new(self.claims.sub.as_str()))
    }

    /// The agent this token is for, if it is an agent or supervisor token.
    pub fn agent_id(&self) -> Option<AgentId> {
        matches!(self.role(), Role::Agent | Role::Supervisor)
            .then(|| AgentId::new(self.claims.sub.as_str()))
    }

    /// The caller's agent profile (agents and supervisors). A token for an
    /// agent that no longer exists, or a supervisor token for an agent whose
    /// profile is not a supervisor's, is refused.
    pub async fn agent_profile(&self, state: &AppState) -> Result<Option<Agent>, HttpError> {
        let Some(agent_id) = self.agent_id() else {
            return Ok(None);
        };
        let profile = state
            .switchboard
            .store()
            .get_agent(&agent_id)
            .await
            .map_err(|err| HttpError::from(actors::ApiError::from(err)))?
            .ok_or_else(|| {
                HttpError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    format!("token names agent `{agent_id}`, who does not exist"),
                )
            })?;
        if self.role() == Role::Supervisor && profile.role != engine::agent::Role::Supervisor {
            return Err(HttpError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                format!("agent `{agent_id}` is not a supervisor"),
            ));
        }
        Ok(Some(profile))
    }

    /// The read rule itself, for a caller whose agent profile (agents and
    /// supervisors) is already at hand: admins read everything, customers
    /// their own sessions, agents the sessions offered or assigned to them,
    /// supervisors also every session of their groups.
    pub fn may_read(&self, profile: Option<&Agent>, session: &Session) -> bool {
        match self.role() {
            Role::Admin => true,
            Role::Customer => self.customer_id().as_ref() == Some(&session.customer_id),
            Role::Agent | Role::Supervisor => {
                let mine = session.agent.is_some() && session.agent == self.agent_id();
                let supervised =
                    self.role() == Role::Supervisor && supervises(profile, session.group.as_ref());
                mine || supervised
            }
        }
    }

    /// May this caller read `session`? Not-allowed customers get `404`.
    pub async fn check_session_read(
        &self,
        state: &AppState,
        session: &Session,
    ) -> Result<(), HttpError> {
        let profile = match self.role() {
            Role::Supervisor => self.agent_profile(state).await?,
            _ => None,
        };
        match (self.may_read(profile.as_ref(), session), self.role()) {
            (true, _) => Ok(()),
            (false, Role::Customer) => Err(HttpError::new(
                StatusCode::NOT_FOUND,
                "unknown_session",
                format!("unknown session `{}`", session.id),
            )),
            (false, _) => Err(HttpError::new(
                StatusCode::FORBIDDEN,
                "not_your_session",
                format!(
                    "session {} is neither offered nor assigned to you, nor in a group you supervise",
                    session.id
                ),
            )),
        }
    }

    /// May this caller read `group`'s queue? Supervisors of the group and admins,
    /// and agents who are members of it.
    pub async fn check_group_read(
        &self,
        state: &AppState,
        group: &GroupId,
    ) -> Result<(), HttpError> {
        match self.role() {
            Role::Admin => Ok(()),
            Role::Customer => Err(HttpError::forbidden("customers cannot see queues")),
            Role::Agent | Role::Supervisor => {
                let profile = self.agent_profile(state).await?;
                match supervises(profile.as_ref(), Some(group)) {
                    true => Ok(()),
                    false => Err(HttpError::forbidden(format!(
                        "you are not a member of group `{group}`"
                    ))),
                }
            }
        }
    }
}

/// A supervisor or admin about to act on the live system: who they are
/// (for the audit log) and where they may act.
#[derive(Debug, Clone)]
pub struct Overseer {
    /// Who acts.
    pub actor: Actor,
    /// A supervisor's groups; `None` for an admin, who acts everywhere.
    groups: Option<Vec<GroupId>>,
}

impl Overseer {
    /// May act on sessions waiting in `group` and send sessions there.
    pub fn oversees(&self, group: &GroupId) -> bool {
        self.groups
            .as_ref()
            .is_none_or(|groups| groups.contains(group))
    }

    /// A supervisor's groups; `None` for an admin (every group).
    pub fn groups(&self) -> Option<&[GroupId]> {
        self.groups.as_deref()
    }

    /// [`Overseer::oversees`], or `403` naming the group.
    pub fn check_group(&self, group: &GroupId) -> Result<(), HttpError> {
        match self.oversees(group) {
            true => Ok(()),
            false => Err(HttpError::forbidden(format!(
                "you do not supervise group `{group}`"
            ))),
        }
    }

    /// May act on `agent`: an admin, or a supervisor of one of their groups.
    pub fn check_agent(&self, agent: &Agent) -> Result<(), HttpError> {
        match agent.groups.iter().any(|group| self.oversees(group)) {
            true => Ok(()),
            false => Err(HttpError::forbidden(format!(
                "agent `{}` is in none of the groups you supervise",
                agent.id
            ))),
        }
    }
}

impl Caller {
    /// The caller as an [`Overseer`]: supervisors (whose profile must be a
    /// supervisor's) and admins; anyone else gets `403`.
    pub async fn overseer(&self, state: &AppState) -> Result<Overseer, HttpError> {
        match self.role() {
            Role::Admin => Ok(Overseer {
                actor: Actor::Admin(self.claims.sub.clone()),
                groups: None,
            }),
            Role::Supervisor => {
                let profile = self.agent_profile(state).await?.ok_or_else(|| {
                    HttpError::forbidden("this needs a supervisor or admin token")
                })?;
                Ok(Overseer {
                    actor: Actor::Supervisor(profile.id.clone()),
                    groups: Some(profile.groups),
                })
            }
            Role::Agent | Role::Customer => Err(HttpError::forbidden(
                "this needs a supervisor or admin token",
            )),
        }
    }
}

/// The agent belongs to `group`.
fn supervises(profile: Option<&Agent>, group: Option<&GroupId>) -> bool {
    match (profile, group) {
        (Some(profile), Some(group)) => profile.groups.contains(group),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_spaces_are_tolerated() {
        let cases = [
            ("Bearer abc", Some("abc")),
            ("bearer abc", Some("abc")),
            ("BEARER abc", Some("abc")),
            ("bEaReR abc", Some("abc")),
            ("Bearer    abc", Some("abc")),
            ("Bearer\tabc ", Some("abc")),
            ("  Bearer abc", Some("abc")),
            ("Bearer", None),
            ("Bearer   ", None),
            ("Basic abc", None),
            ("Bearerabc", None),
            ("", None),
        ];
        for (header, expected) in cases {
            assert_eq!(bearer_credentials(header), expected, "{header:?}");
        }
    }
}
