//! The keyspace, the tables, and the versioned migrations that create them.
//!
//! Every migration statement is idempotent (`IF NOT EXISTS`), so a node that
//! died between applying a migration and recording it in `schema_migrations`
//! applies it again harmlessly, and two nodes starting at once both succeed.

use scylla::client::session::Session;

use super::{Replication, backend_error};
use crate::StoreError;

/// One step of the schema, applied once per keyspace, in `version` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    /// Strictly increasing from 1.
    pub version: i32,
    /// What it does, recorded with it.
    pub name: &'static str,
    /// CQL statements, each idempotent.
    pub statements: &'static [&'static str],
}

/// Seconds in the interaction TTL (30 days), the table default of
/// `customer_interactions` and its expiry index.
pub const INTERACTION_TTL_SECS: i64 = crate::INTERACTION_TTL_MS / 1000;

/// Where applied migrations are recorded (created before any migration runs).
pub const CREATE_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version int PRIMARY KEY,
    name text,
    applied_at bigint)";

/// Every migration this build knows, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "customers, sessions, messages, interactions, agents, groups",
        statements: &[
            "CREATE TABLE IF NOT EXISTS customers (
    customer_id text PRIMARY KEY,
    display_name text,
    tier text,
    tags list<text>,
    language text,
    last_agent text,
    created_at bigint)",
            // Claimed with INSERT … IF NOT EXISTS: one owner per identity.
            "CREATE TABLE IF NOT EXISTS customer_identities (
    channel text,
    external_id text,
    customer_id text,
    PRIMARY KEY ((channel, external_id)))",
            "CREATE TABLE IF NOT EXISTS identities_by_customer (
    customer_id text,
    channel text,
    external_id text,
    PRIMARY KEY ((customer_id), channel, external_id))",
            "CREATE TABLE IF NOT EXISTS sessions (
    session_id bigint PRIMARY KEY,
    customer_id text,
    channel text,
    state text,
    group_id text,
    agent_id text,
    created_at bigint,
    queued_at bigint,
    offered_at bigint,
    answered_at bigint,
    first_response_at bigint,
    wrap_up_at bigint,
    closed_at bigint,
    last_seq bigint,
    transfers int,
    summary text,
    rating tinyint)",
            "CREATE TABLE IF NOT EXISTS sessions_by_customer (
    customer_id text,
    created_at bigint,
    session_id bigint,
    PRIMARY KEY ((customer_id), created_at, session_id))
    WITH CLUSTERING ORDER BY (created_at DESC, session_id DESC)",
            "CREATE TABLE IF NOT EXISTS open_sessions (
    bucket int,
    session_id bigint,
    PRIMARY KEY ((bucket), session_id))",
            // Appended with a conditional batch per session: a seq is written once.
            "CREATE TABLE IF NOT EXISTS session_messages (
    session_id bigint,
    seq bigint,
    sender_kind text,
    sender_agent text,
    body text,
    client_message_id text,
    channel text,
    at bigint,
    PRIMARY KEY ((session_id), seq))
    WITH CLUSTERING ORDER BY (seq ASC)",
            "CREATE TABLE IF NOT EXISTS customer_interactions (
    customer_id text,
    at bigint,
    session_id bigint,
    channel text,
    summary text,
    PRIMARY KEY ((customer_id), at, session_id))
    WITH CLUSTERING ORDER BY (at DESC, session_id DESC)
    AND default_time_to_live = 2592000",
            "CREATE TABLE IF NOT EXISTS agents (
    agent_id text PRIMARY KEY,
    display_name text,
    role text,
    skills map<text, int>,
    groups list<text>,
    languages list<text>,
    capacity_limits map<text, int>,
    capacity_exclusive set<text>)",
            "CREATE TABLE IF NOT EXISTS skill_groups (
    group_id text PRIMARY KEY,
    display_name text,
    sla_threshold_secs int,
    sla_threshold_by_channel map<text, int>,
    sla_target_pct double,
    short_abandon_secs int)",
        ],
    },
    Migration {
        version: 2,
        name: "expiry index of customer_interactions for purge_expired",
        statements: &[
            "CREATE TABLE IF NOT EXISTS interactions_by_day (
    day bigint,
    at bigint,
    customer_id text,
    session_id bigint,
    PRIMARY KEY ((day), at, customer_id, session_id))
    WITH default_time_to_live = 2592000",
            "CREATE TABLE IF NOT EXISTS interaction_days (
    shard int,
    day bigint,
    PRIMARY KEY ((shard), day))
    WITH default_time_to_live = 2592000",
        ],
    },
    // Records whose fields grow with the product: key columns plus one JSON
    // `record`, so a new field needs no migration (see `platform.rs`).
    Migration {
        version: 3,
        name: "tickets, ticket events, articles, templates, summaries, webhook outbox",
        statements: &[
            "CREATE TABLE IF NOT EXISTS tickets (
    ticket_id text PRIMARY KEY,
    customer_id text,
    created_at bigint,
    record text)",
            // Written in the same logged batch as `tickets`, with the whole record.
            "CREATE TABLE IF NOT EXISTS tickets_by_customer (
    customer_id text,
    created_at bigint,
    ticket_id text,
    record text,
    PRIMARY KEY ((customer_id), created_at, ticket_id))
    WITH CLUSTERING ORDER BY (created_at DESC, ticket_id DESC)",
            // Appended with a conditional batch per ticket: a seq is written once.
            "CREATE TABLE IF NOT EXISTS ticket_events (
    ticket_id text,
    seq bigint,
    record text,
    PRIMARY KEY ((ticket_id), seq))
    WITH CLUSTERING ORDER BY (seq ASC)",
            // One partition (bucket 0): small, always listed whole.
            "CREATE TABLE IF NOT EXISTS kb_articles (
    bucket int,
    article_id text,
    record text,
    PRIMARY KEY ((bucket), article_id))",
            "CREATE TABLE IF NOT EXISTS reply_templates (
    bucket int,
    template_id text,
    record text,
    PRIMARY KEY ((bucket), template_id))",
            "CREATE TABLE IF NOT EXISTS session_summaries (
    session_id bigint PRIMARY KEY,
    record text)",
            // A few partitions by a stable hash of the id, all read by `outbox_due`.
            "CREATE TABLE IF NOT EXISTS webhook_outbox (
    bucket int,
    outbox_id text,
    next_attempt_at bigint,
    dead boolean,
    record text,
    PRIMARY KEY ((bucket), outbox_id))",
        ],
    },
    // An agent's SIP phone credentials (hashed), as a JSON record beside the
    // agents row; a null record means none.
    Migration {
        version: 4,
        name: "agent SIP credentials",
        statements: &["CREATE TABLE IF NOT EXISTS agent_sip (
    agent_id text PRIMARY KEY,
    record text)"],
    },
    // Where agents' replies go: the session's channel account route as a
    // JSON record beside the sessions row (a table, so the step is
    // idempotent); a null record means none.
    Migration {
        version: 5,
        name: "session reply routes",
        statements: &["CREATE TABLE IF NOT EXISTS session_reply_route (
    session_id bigint PRIMARY KEY,
    record text)"],
    },
    // The group a contact counts in for its SLA figures, beside the
    // sessions row (a table, so the step is idempotent); null for none.
    Migration {
        version: 6,
        name: "session SLA groups",
        statements: &["CREATE TABLE IF NOT EXISTS session_sla_group (
    session_id bigint PRIMARY KEY,
    group_id text)"],
    },
    // The audit log of supervisor actions, one partition per UTC day,
    // newest first; the JSON record holds the entry.
    Migration {
        version: 7,
        name: "audit log",
        statements: &["CREATE TABLE IF NOT EXISTS audit_log (
    day bigint,
    at bigint,
    id bigint,
    record text,
    PRIMARY KEY ((day), at, id)
) WITH CLUSTERING ORDER BY (at DESC, id DESC)"],
    },
    // What the historical reports read (docs/reports.md): the routing steps
    // a session waited in beside its row; sessions by the UTC day they first
    // queued; the agents' log by day, and their activity by agent, newest
    // first, for what an agent was doing when a report's window starts.
    Migration {
        version: 8,
        name: "report indexes: session steps, sessions by queued day, agent log",
        statements: &[
            "CREATE TABLE IF NOT EXISTS session_steps (
    session_id bigint PRIMARY KEY,
    record text)",
            "CREATE TABLE IF NOT EXISTS sessions_by_queued_day (
    day bigint,
    queued_at bigint,
    session_id bigint,
    PRIMARY KEY ((day), queued_at, session_id))",
            "CREATE TABLE IF NOT EXISTS agent_log (
    day bigint,
    at bigint,
    id bigint,
    record text,
    PRIMARY KEY ((day), at, id))",
            "CREATE TABLE IF NOT EXISTS agent_activity_by_agent (
    agent_id text,
    at bigint,
    id bigint,
    record text,
    PRIMARY KEY ((agent_id), at, id)
) WITH CLUSTERING ORDER BY (at DESC, id DESC)",
        ],
    },
];

/// The newest schema version this build reads and writes.
pub fn latest_version() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// `CREATE KEYSPACE IF NOT EXISTS` with the configured replication.
pub fn create_keyspace(keyspace: &str, replication: &Replication) -> String {
    format!(
        "CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {}",
        replication.to_cql()
    )
}

/// The migrations still to apply, given the versions already recorded;
/// refuses a keyspace written by a newer build.
pub fn pending(applied: &[i32]) -> Result<Vec<&'static Migration>, StoreError> {
    let newest = applied.iter().copied().max().unwrap_or(0);
    if newest > latest_version() {
        return Err(StoreError::Backend(format!(
            "scylla: schema version {newest} is newer than this build's {}",
            latest_version()
        )));
    }
    Ok(MIGRATIONS
        .iter()
        .filter(|m| !applied.contains(&m.version))
        .collect())
}

/// Creates the keyspace and applies every pending migration, recording each.
pub(super) async fn migrate(
    session: &Session,
    keyspace: &str,
    replication: &Replication,
) -> Result<Vec<i32>, StoreError> {
    let run = |cql: String| async move {
        session
            .query_unpaged(cql.clone(), ())
            .await
            .map_err(backend_error(&format!("running `{}`", first_line(&cql))))
    };
    run(create_keyspace(keyspace, replication)).await?;
    session
        .use_keyspace(keyspace, false)
        .await
        .map_err(backend_error(&format!("using keyspace {keyspace}")))?;
    run(CREATE_MIGRATIONS_TABLE.to_owned()).await?;
    let applied: Vec<i32> = session
        .query_unpaged("SELECT version FROM schema_migrations", ())
        .await
        .map_err(backend_error("reading schema_migrations"))?
        .into_rows_result()
        .map_err(backend_error("reading schema_migrations"))?
        .rows::<(i32,)>()
        .map_err(backend_error("reading schema_migrations"))?
        .map(|row| row.map(|(version,)| version))
        .collect::<Result<_, _>>()
        .map_err(backend_error("reading schema_migrations"))?;
    let mut newly_applied = Vec::new();
    for migration in pending(&applied)? {
        for statement in migration.statements {
            run((*statement).to_owned()).await?;
        }
        session
            .await_schema_agreement()
            .await
            .map_err(backend_error("waiting for schema agreement"))?;
        session
            .query_unpaged(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, wall_clock_millis()),
            )
            .await
            .map_err(backend_error("recording a migration"))?;
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "scylla schema migration applied"
        );
        newly_applied.push(migration.version);
    }
    Ok(newly_applied)
}

fn first_line(cql: &str) -> &str {
    cql.lines().next().unwrap_or(cql).trim_end_matches(" (")
}

fn wall_clock_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
