//! The ScyllaDB backend: the same [`Store`] contract on a cluster, for
//! contact centers that outgrow one machine.
//!
//! ```text
//!  write(batch) ──plan──▶ 1. identity claims      INSERT … IF NOT EXISTS   (one Paxos round each)
//!                         2. messages per session conditional batch      (one Paxos round per session)
//!                            ticket events per ticket, alongside         (one Paxos round per ticket)
//!                         3. everything else      one logged batch         (atomic across partitions)
//!               a contract failure in 1 or 2 gives back what 1 and 2 took, so the batch fails whole
//!  reads ───────────────▶ prepared statements, token-aware, LOCAL_QUORUM by default
//! ```
//!
//! Tables, keys and the query each serves are in `docs/data-model.md`; the
//! data platform's tables (tickets, articles, templates, summaries, the
//! webhook outbox) are in [`platform`].
//! [`schema::MIGRATIONS`] creates them at start-up and records each version in
//! `schema_migrations`.
//!
//! Connecting is bounded by [`ScyllaOptions::connect_timeout`] as a whole: the
//! driver's own connection timeout covers only the TCP connect, and
//! `SessionBuilder::build` waits forever on an endpoint that accepts the
//! connection and never answers. Every request is bounded by
//! [`ScyllaOptions::request_timeout`]. When the cluster becomes unreachable
//! at run time each call fails with [`StoreError::Backend`] and the driver
//! reconnects in the background; nothing needs restarting when it returns.
//! A write whose request may have reached a node without its answer coming
//! back (a timeout, a connection broken after sending) fails with
//! [`StoreError::OutcomeUnknown`] instead: it may be stored, wholly or in
//! part, and is not taken back (`outcome.rs` classifies the driver's errors).
//!
//! Atomicity differs from SQLite in one way: the three steps above are three
//! round-trips. A process killed between step 2 and step 3 leaves claimed
//! identities, appended messages and appended ticket events without the
//! rest of their batch. The writer's retry of the same batch then completes
//! it for identities and messages, because a claim held by the same
//! customer, and a message row identical to the one being written, count as
//! already written. A ticket event does not: the contract wants its seq new
//! even when the event is identical, so the retry fails with
//! [`StoreError::DuplicateTicketEvent`] (see [`platform`]).

mod outcome;
mod platform;
mod read;
mod rows;
pub mod schema;
pub mod statements;
#[cfg(test)]
mod tests;
mod write;

use std::collections::BTreeMap;
use std::fmt::Display;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::policies::load_balancing::DefaultPolicy;
use scylla::policies::timestamp_generator::MonotonicTimestampGenerator;

pub use scylla::statement::{Consistency, SerialConsistency};

use self::statements::Prepared;
use super::{Interaction, Store, StoreError, WriteOp};
use engine::Millis;
use engine::agent::Agent;
use engine::assist::ReplyTemplate;
use engine::channel::Channel;
use engine::customer::Customer;
use engine::group::SkillGroup;
use engine::ids::{AgentId, CustomerId, SessionId, TicketId};
use engine::kb::Article;
use engine::message::StoredMessage;
use engine::outbox::OutboxEntry;
use engine::session::Session as ContactSession;
use engine::summary::SessionSummary;
use engine::ticket::{Ticket, TicketEvent};

/// How long creating the keyspace, migrating and preparing may take after
/// the connection is up (schema changes wait for every node to agree).
pub const SCHEMA_TIMEOUT: Duration = Duration::from_secs(60);

/// How the keyspace is replicated; applied when the keyspace is created
/// (change it later with `ALTER KEYSPACE` and a repair).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replication {
    /// One data center: `factor` copies of each row.
    Simple {
        /// Copies of each row (3 in production, 1 for a single dev node).
        factor: u32,
    },
    /// Copies per data center, by name.
    NetworkTopology {
        /// Data center name → copies of each row there.
        datacenters: BTreeMap<String, u32>,
    },
}

impl Replication {
    /// The CQL map literal of `WITH replication = …`.
    pub fn to_cql(&self) -> String {
        match self {
            Replication::Simple { factor } => {
                format!("{{'class': 'SimpleStrategy', 'replication_factor': {factor}}}")
            }
            Replication::NetworkTopology { datacenters } => {
                let mut cql = "{'class': 'NetworkTopologyStrategy'".to_owned();
                for (datacenter, factor) in datacenters {
                    cql.push_str(&format!(", '{datacenter}': {factor}"));
                }
                cql.push('}');
                cql
            }
        }
    }
}

/// Where the cluster is and how to talk to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScyllaOptions {
    /// `host:port` of one or more nodes; the driver discovers the rest.
    pub contact_points: Vec<String>,
    /// Created if missing; letters, digits and `_`, at most 48.
    pub keyspace: String,
    /// Used when the keyspace is created.
    pub replication: Replication,
    /// Of every read and write.
    pub consistency: Consistency,
    /// Of the Paxos round of lightweight transactions (identity claims,
    /// message and ticket event appends).
    pub serial_consistency: SerialConsistency,
    /// The data center this node prefers (DC-aware, token-aware routing);
    /// `None` lets the driver use every data center alike.
    pub local_datacenter: Option<String>,
    /// Connecting as a whole, not just the TCP connect.
    pub connect_timeout: Duration,
    /// Every request, including the driver's retries.
    pub request_timeout: Duration,
    /// Password authentication, when the cluster requires it.
    pub credentials: Option<(String, engine::secret::Secret)>,
}

impl Default for ScyllaOptions {
    fn default() -> Self {
        ScyllaOptions {
            contact_points: vec!["127.0.0.1:9042".to_owned()],
            keyspace: "switchboard".to_owned(),
            replication: Replication::Simple { factor: 1 },
            consistency: Consistency::LocalQuorum,
            serial_consistency: SerialConsistency::LocalSerial,
            local_datacenter: None,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(2),
            credentials: None,
        }
    }
}

impl ScyllaOptions {
    /// Checks what CQL text is built from; returns the bad field and why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.contact_points.is_empty() {
            return Err(("contact_points", "must name at least one node".into()));
        }
        if let Some(bad) = self.contact_points.iter().find(|p| p.trim().is_empty()) {
            return Err(("contact_points", format!("empty entry {bad:?}")));
        }
        check_identifier("keyspace", &self.keyspace)?;
        match &self.replication {
            Replication::Simple { factor: 0 } => {
                return Err(("replication_factor", "must be at least 1".into()));
            }
            Replication::Simple { .. } => {}
            Replication::NetworkTopology { datacenters } => {
                if datacenters.is_empty() {
                    return Err((
                        "datacenters",
                        "NetworkTopologyStrategy needs at least one data center".into(),
                    ));
                }
                for (datacenter, factor) in datacenters {
                    check_datacenter(datacenter)?;
                    if *factor == 0 {
                        return Err((
                            "datacenters",
                            format!("data center `{datacenter}` needs a factor of at least 1"),
                        ));
                    }
                }
            }
        }
        if let Some(datacenter) = &self.local_datacenter {
            check_datacenter(datacenter).map_err(|(_, why)| ("local_datacenter", why))?;
        }
        if self.connect_timeout.is_zero() {
            return Err(("connect_timeout_ms", "must be greater than 0".into()));
        }
        if self.request_timeout.is_zero() {
            return Err(("request_timeout_ms", "must be greater than 0".into()));
        }
        Ok(())
    }
}

fn check_identifier(field: &'static str, name: &str) -> Result<(), (&'static str, String)> {
    let valid = !name.is_empty()
        && name.len() <= 48
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err((
            field,
            format!(
                "`{name}` is not a CQL name: a letter, then letters, digits or `_`, at most 48"
            ),
        ))
    }
}

fn check_datacenter(name: &str) -> Result<(), (&'static str, String)> {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if valid {
        Ok(())
    } else {
        Err((
            "datacenters",
            format!("`{name}` is not a data center name (letters, digits, `_`, `-`, `.`)"),
        ))
    }
}

/// Parses a consistency level as written in configuration (`local_quorum`).
pub fn parse_consistency(name: &str) -> Result<Consistency, String> {
    let level = match name.to_ascii_lowercase().as_str() {
        "any" => Consistency::Any,
        "one" => Consistency::One,
        "two" => Consistency::Two,
        "three" => Consistency::Three,
        "quorum" => Consistency::Quorum,
        "all" => Consistency::All,
        "local_quorum" => Consistency::LocalQuorum,
        "each_quorum" => Consistency::EachQuorum,
        "local_one" => Consistency::LocalOne,
        _ => {
            return Err(format!(
                "unknown consistency `{name}`; one of any, one, two, three, quorum, all, local_quorum, each_quorum, local_one"
            ));
        }
    };
    Ok(level)
}

/// Parses a serial consistency level (`local_serial` or `serial`).
pub fn parse_serial_consistency(name: &str) -> Result<SerialConsistency, String> {
    match name.to_ascii_lowercase().as_str() {
        "serial" => Ok(SerialConsistency::Serial),
        "local_serial" => Ok(SerialConsistency::LocalSerial),
        _ => Err(format!(
            "unknown serial consistency `{name}`; one of serial, local_serial"
        )),
    }
}

/// The default execution profile: consistency, timeouts and routing of
/// every request.
pub fn execution_profile(options: &ScyllaOptions) -> ExecutionProfile {
    let mut policy = DefaultPolicy::builder().token_aware(true);
    if let Some(datacenter) = &options.local_datacenter {
        policy = policy
            .prefer_datacenter(datacenter.clone())
            .permit_dc_failover(false);
    }
    ExecutionProfile::builder()
        .consistency(options.consistency)
        .serial_consistency(Some(options.serial_consistency))
        .request_timeout(Some(options.request_timeout))
        .load_balancing_policy(policy.build())
        .build()
}

/// A `map_err` adapter: the backend's error with what it was doing.
pub(super) fn backend_error<E: Display>(context: &str) -> impl Fn(E) -> StoreError + '_ {
    move |err| StoreError::Backend(format!("scylla: {context}: {err}"))
}

/// The ScyllaDB backend.
pub struct ScyllaStore {
    session: Session,
    statements: Prepared,
    options: ScyllaOptions,
    closed: AtomicBool,
}

impl std::fmt::Debug for ScyllaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScyllaStore")
            .field("contact_points", &self.options.contact_points)
            .field("keyspace", &self.options.keyspace)
            .finish_non_exhaustive()
    }
}

impl ScyllaStore {
    /// Connects, creates the keyspace, applies pending migrations and
    /// prepares every statement. Fails with a message naming the contact
    /// points within `connect_timeout` (plus [`SCHEMA_TIMEOUT`] once connected).
    pub async fn connect(options: ScyllaOptions) -> Result<ScyllaStore, StoreError> {
        options.validate().map_err(|(field, why)| {
            StoreError::Backend(format!("scylla: bad option {field}: {why}"))
        })?;
        let points = options.contact_points.join(", ");
        let mut builder = SessionBuilder::new()
            .known_nodes(&options.contact_points)
            .connection_timeout(options.connect_timeout)
            .hostname_resolution_timeout(Some(options.connect_timeout))
            .default_execution_profile_handle(execution_profile(&options).into_handle())
            .timestamp_generator(Arc::new(MonotonicTimestampGenerator::new()))
            .schema_agreement_timeout(SCHEMA_TIMEOUT);
        if let Some((user, password)) = &options.credentials {
            builder = builder.user(user, password.expose());
        }
        let connect_ms = options.connect_timeout.as_millis();
        let session = match tokio::time::timeout(options.connect_timeout, builder.build()).await {
            Err(_) => {
                return Err(StoreError::Backend(format!(
                    "scylla: no CQL answer from {points} within {connect_ms} ms \
                     (the address accepts connections but does not answer as ScyllaDB); \
                     check store.scylla_contact_points"
                )));
            }
            Ok(Err(err)) => {
                return Err(StoreError::Backend(format!(
                    "scylla: cannot connect to {points}: {err}"
                )));
            }
            Ok(Ok(session)) => session,
        };
        let setup = async {
            schema::migrate(&session, &options.keyspace, &options.replication).await?;
            Prepared::prepare(&session).await
        };
        let statements = tokio::time::timeout(SCHEMA_TIMEOUT, setup)
            .await
            .map_err(|_| {
                StoreError::Backend(format!(
                    "scylla: schema set-up on {points} did not finish within {} s",
                    SCHEMA_TIMEOUT.as_secs()
                ))
            })??;
        tracing::info!(contact_points = %points, keyspace = %options.keyspace, "scylla store connected");
        Ok(ScyllaStore {
            session,
            statements,
            options,
            closed: AtomicBool::new(false),
        })
    }

    /// The options it was connected with.
    pub fn options(&self) -> &ScyllaOptions {
        &self.options
    }

    /// Drops the whole keyspace (the contract tests' clean-up).
    pub async fn drop_keyspace(&self) -> Result<(), StoreError> {
        let keyspace = &self.options.keyspace;
        self.session
            .query_unpaged(format!("DROP KEYSPACE IF EXISTS {keyspace}"), ())
            .await
            .map_err(backend_error(&format!("dropping keyspace {keyspace}")))?;
        Ok(())
    }

    fn check_open(&self) -> Result<(), StoreError> {
        if self.closed.load(Ordering::Acquire) {
            Err(StoreError::Closed)
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl Store for ScyllaStore {
    async fn write(&self, batch: &[WriteOp]) -> Result<(), StoreError> {
        self.check_open()?;
        write::write(self, batch).await
    }

    async fn get_customer(&self, id: &CustomerId) -> Result<Option<Customer>, StoreError> {
        self.check_open()?;
        read::get_customer(self, id).await
    }

    async fn find_customer_by_identity(
        &self,
        channel: &Channel,
        external_id: &str,
    ) -> Result<Option<CustomerId>, StoreError> {
        self.check_open()?;
        read::identity_owner(self, channel.as_str(), external_id, None).await
    }

    async fn get_session(&self, id: SessionId) -> Result<Option<ContactSession>, StoreError> {
        self.check_open()?;
        read::get_session(self, id).await
    }

    async fn sessions_of_customer(
        &self,
        id: &CustomerId,
        limit: usize,
    ) -> Result<Vec<ContactSession>, StoreError> {
        self.check_open()?;
        read::sessions_of_customer(self, id, limit).await
    }

    async fn open_sessions(&self) -> Result<Vec<ContactSession>, StoreError> {
        self.check_open()?;
        read::open_sessions(self).await
    }

    async fn messages(
        &self,
        session: SessionId,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.check_open()?;
        read::messages(self, session, after_seq, limit).await
    }

    async fn interactions(
        &self,
        customer: &CustomerId,
        now: Millis,
        limit: usize,
    ) -> Result<Vec<Interaction>, StoreError> {
        self.check_open()?;
        read::interactions(self, customer, now, limit).await
    }

    async fn purge_expired(&self, now: Millis) -> Result<u64, StoreError> {
        self.check_open()?;
        write::purge_expired(self, now).await
    }

    async fn list_agents(&self) -> Result<Vec<Agent>, StoreError> {
        self.check_open()?;
        read::list_agents(self).await
    }

    async fn get_agent(&self, id: &AgentId) -> Result<Option<Agent>, StoreError> {
        self.check_open()?;
        read::get_agent(self, id).await
    }

    async fn list_groups(&self) -> Result<Vec<SkillGroup>, StoreError> {
        self.check_open()?;
        read::list_groups(self).await
    }

    async fn get_ticket(&self, id: &TicketId) -> Result<Option<Ticket>, StoreError> {
        self.check_open()?;
        platform::get_ticket(self, id).await
    }

    async fn tickets_of_customer(
        &self,
        customer: &CustomerId,
        limit: usize,
    ) -> Result<Vec<Ticket>, StoreError> {
        self.check_open()?;
        platform::tickets_of_customer(self, customer, limit).await
    }

    async fn ticket_events(
        &self,
        ticket: &TicketId,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<TicketEvent>, StoreError> {
        self.check_open()?;
        platform::ticket_events(self, ticket, after_seq, limit).await
    }

    async fn list_articles(&self) -> Result<Vec<Article>, StoreError> {
        self.check_open()?;
        platform::list_articles(self).await
    }

    async fn list_templates(&self) -> Result<Vec<ReplyTemplate>, StoreError> {
        self.check_open()?;
        platform::list_templates(self).await
    }

    async fn get_summary(&self, session: SessionId) -> Result<Option<SessionSummary>, StoreError> {
        self.check_open()?;
        platform::get_summary(self, session).await
    }

    async fn audit_log(
        &self,
        since: Millis,
        until: Millis,
        limit: usize,
    ) -> Result<Vec<engine::supervision::AuditEntry>, StoreError> {
        platform::audit_log(self, since, until, limit).await
    }

    async fn sessions_queued(
        &self,
        from: Millis,
        to: Millis,
        after: Option<(Millis, SessionId)>,
        limit: usize,
    ) -> Result<Vec<engine::session::Session>, StoreError> {
        self.check_open()?;
        read::sessions_queued(self, from, to, after, limit).await
    }

    async fn agent_log(
        &self,
        from: Millis,
        to: Millis,
        after: Option<(Millis, u64)>,
        limit: usize,
    ) -> Result<Vec<engine::sla::report::AgentLogEntry>, StoreError> {
        self.check_open()?;
        platform::agent_log(self, from, to, after, limit).await
    }

    async fn agent_activity_before(
        &self,
        agent: &AgentId,
        at: Millis,
    ) -> Result<Option<engine::sla::report::AgentLogEntry>, StoreError> {
        self.check_open()?;
        platform::agent_activity_before(self, agent, at).await
    }

    async fn outbox_due(&self, now: Millis, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        self.check_open()?;
        platform::outbox_due(self, now, limit).await
    }

    async fn close(&self) -> Result<(), StoreError> {
        // Every write has returned before its caller could close: nothing is queued here.
        self.closed.store(true, Ordering::Release);
        Ok(())
    }
}
