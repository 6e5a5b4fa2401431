//! Every statement against the schema, without a server: each row binds
//! to its statement by marker name, each positional bind value to the
//! column its marker is compared with, and each `SELECT` decodes into the
//! row type read from it — names and CQL types taken from the migrations'
//! `CREATE TABLE`s, so a misspelt column or a wrong Rust type fails here —
//! plus statement text and idempotence.

use scylla::deserialize::row::DeserializeRow;
use scylla::frame::response::result::{
    CollectionType, ColumnSpec, ColumnType, NativeType, TableSpec,
};
use scylla::serialize::row::{RowSerializationContext, SerializeRow};
use scylla::serialize::writers::RowWriter;

use super::super::platform::{
    AgentActivityRow, AgentLogRow, ArticleRow, AuditRow, LIST_BUCKET, OutboxRow, SummaryRow,
    TemplateRow, TicketEventRow, TicketRow,
};
use super::super::read::limit_to_cql;
use super::super::rows::{
    AgentRow, AgentSipRow, CustomerRow, GroupRow, IdentityRow, InteractionByDayRow, InteractionRow,
    SessionByQueuedDayRow, SessionRouteRow, SessionRow, SessionSlaGroupRow, SessionStepsRow,
};
use super::super::statements::{ALL, Cql};
use super::*;
use crate::session_id_to_i64;

/// `table → column → CQL type`, read from the migrations' `CREATE TABLE`s.
fn tables() -> BTreeMap<String, BTreeMap<String, String>> {
    let mut tables = BTreeMap::new();
    let creates = MIGRATIONS
        .iter()
        .flat_map(|m| m.statements.iter())
        .chain([&schema::CREATE_MIGRATIONS_TABLE]);
    for statement in creates {
        let rest = statement
            .strip_prefix("CREATE TABLE IF NOT EXISTS ")
            .expect("every migration statement creates a table if missing");
        let (name, body) = rest.split_once(" (").expect("a column list");
        let columns = body
            .lines()
            .map(str::trim)
            .take_while(|line| !line.starts_with("PRIMARY KEY"))
            .filter_map(|line| {
                let line = line
                    .trim_end_matches(',')
                    .trim_end_matches(')')
                    .trim_end_matches(" PRIMARY KEY");
                let (column, typ) = line.split_once(' ')?;
                Some((column.to_owned(), typ.to_owned()))
            })
            .collect();
        tables.insert(name.to_owned(), columns);
    }
    tables
}

fn column_type(cql: &str) -> ColumnType<'static> {
    let native = |name: &str| {
        ColumnType::Native(match name {
            "text" => NativeType::Text,
            "bigint" => NativeType::BigInt,
            "int" => NativeType::Int,
            "tinyint" => NativeType::TinyInt,
            "double" => NativeType::Double,
            "boolean" => NativeType::Boolean,
            other => panic!("no test mapping for CQL type {other}"),
        })
    };
    let collection = |typ| ColumnType::Collection { frozen: false, typ };
    if let Some(inner) = cql.strip_prefix("list<").and_then(|s| s.strip_suffix('>')) {
        collection(CollectionType::List(Box::new(native(inner))))
    } else if let Some(inner) = cql.strip_prefix("set<").and_then(|s| s.strip_suffix('>')) {
        collection(CollectionType::Set(Box::new(native(inner))))
    } else if let Some(inner) = cql.strip_prefix("map<").and_then(|s| s.strip_suffix('>')) {
        let (key, value) = inner.split_once(", ").expect("map<k, v>");
        collection(CollectionType::Map(
            Box::new(native(key)),
            Box::new(native(value)),
        ))
    } else {
        native(cql)
    }
}

/// Serializes `row` for the statement called `name` as the driver would,
/// with bind-marker names and types taken from the statement text and the
/// table's `CREATE TABLE`: a misspelt marker or a wrong Rust type fails here.
fn bind(name: &str, row: &dyn SerializeRow) -> Result<usize, String> {
    let cql = ALL
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, cql)| cql.text)
        .unwrap_or_else(|| panic!("no statement {name}"));
    let table = cql
        .split_whitespace()
        .skip_while(|w| *w != "INTO" && *w != "FROM")
        .nth(1)
        .expect("a table");
    let tables = tables();
    let columns = tables
        .get(table)
        .unwrap_or_else(|| panic!("{name}: table {table} is not created by any migration"));
    let markers: Vec<&str> = cql
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter_map(|w| w.strip_prefix(':'))
        .collect();
    assert!(!markers.is_empty(), "{name} binds by name");
    let specs: Vec<ColumnSpec<'_>> = markers
        .iter()
        .map(|marker| {
            let typ = columns
                .get(*marker)
                .unwrap_or_else(|| panic!("{name}: {table} has no column {marker}"));
            ColumnSpec::borrowed(marker, column_type(typ), TableSpec::borrowed("ks", table))
        })
        .collect();
    let mut buffer = Vec::new();
    let mut writer = RowWriter::new(&mut buffer);
    row.serialize(&RowSerializationContext::from_specs(&specs), &mut writer)
        .map_err(|err| err.to_string())?;
    Ok(writer.value_count())
}

#[test]
fn every_row_binds_to_its_statement() {
    let mut closed = full_session();
    closed.id = SessionId(2);
    closed.state = SessionState::Closed;
    let batch = vec![
        WriteOp::PutCustomer(customer()),
        WriteOp::PutSession(full_session()),
        WriteOp::PutSession(closed),
        WriteOp::RecordInteraction(Interaction {
            customer_id: CustomerId::new("c-1"),
            at: T0,
            session_id: SessionId(2),
            channel: Channel::Web,
            summary: "closed".into(),
        }),
        WriteOp::PutAgent(agent()),
        WriteOp::PutGroup(group()),
    ];
    let batch = [batch, platform::every_platform_op()].concat();
    let planned = plan(&batch).unwrap();
    let mut bound = std::collections::BTreeSet::new();
    for upsert in &planned.upserts {
        let (name, values) = upsert.parts();
        let n_values = bind(name, &*values).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(n_values > 0);
        bound.insert(name);
    }
    for claim in &planned.claims {
        bind("claim_identity", claim).unwrap();
    }
    bind(
        "append_message",
        &rows::message_to_row(&message(1, 1, Sender::Customer)),
    )
    .unwrap();
    for rows in planned.ticket_events.values() {
        for row in rows {
            bind("append_ticket_event", row).unwrap();
        }
    }
    let conditional = ["claim_identity", "append_message", "append_ticket_event"];
    // Every named-marker statement was exercised.
    for (name, cql) in ALL {
        if cql.text.contains(":") && !conditional.contains(name) {
            assert!(
                bound.contains(name),
                "{name} was not bound by the sample batch"
            );
        }
    }
    // A wrong type is caught: a session row where a message row belongs.
    let wrong = rows::session_to_row(&full_session());
    assert!(bind("append_message", &wrong).is_err());
    // So is a row whose fields do not match the statement's columns.
    let summary = SummaryRow {
        session_id: 1,
        record: "{}".into(),
    };
    assert!(bind("insert_ticket", &summary).is_err());
}

/// `table → column → CQL type` of one statement's table.
fn table_of(name: &str, cql: &str) -> (String, BTreeMap<String, String>) {
    let table = cql
        .split_whitespace()
        .skip_while(|w| *w != "INTO" && *w != "FROM")
        .nth(1)
        .expect("a table");
    let columns = tables()
        .remove(table)
        .unwrap_or_else(|| panic!("{name}: table {table} is not created by any migration"));
    (table.to_owned(), columns)
}

fn spec<'a>(table: &'a str, name: &'a str, cql_type: &str) -> ColumnSpec<'a> {
    ColumnSpec::borrowed(
        name,
        column_type(cql_type),
        TableSpec::borrowed("ks", table),
    )
}

/// Serializes `values` for the positional (`?`) markers of the statement
/// called `name`, each typed as the column it is compared with (`LIMIT ?`
/// as `int`): a misspelt column or a wrong Rust type fails here.
fn bind_positional(name: &str, values: &dyn SerializeRow) -> Result<usize, String> {
    let cql = ALL.iter().find(|(n, _)| *n == name).unwrap().1.text;
    let (table, columns) = table_of(name, cql);
    // A tuple relation `(a, b) > (?, ?)` binds like `a > ? … b > ?`.
    let flat = flatten_tuple_relations(cql);
    let words: Vec<&str> = flat.split_whitespace().collect();
    let mut markers = Vec::new();
    for (idx, word) in words.iter().enumerate() {
        if *word != "?" {
            continue;
        }
        if words[idx - 1] == "LIMIT" {
            markers.push(("[limit]", "int".to_owned()));
            continue;
        }
        let column = words[idx - 2];
        let typ = columns
            .get(column)
            .unwrap_or_else(|| panic!("{name}: {table} has no column {column}"));
        markers.push((column, typ.clone()));
    }
    let specs: Vec<ColumnSpec<'_>> = markers
        .iter()
        .map(|(column, typ)| spec(&table, column, typ))
        .collect();
    let mut buffer = Vec::new();
    let mut writer = RowWriter::new(&mut buffer);
    values
        .serialize(&RowSerializationContext::from_specs(&specs), &mut writer)
        .map_err(|err| err.to_string())?;
    Ok(writer.value_count())
}

/// Rewrites each `(a, b) OP (?, ?)` of `cql` as `a OP ? AND b OP ?`, so
/// that every marker follows its column and operator.
fn flatten_tuple_relations(cql: &str) -> String {
    let mut out = String::new();
    let mut rest = cql;
    while let Some(start) = rest.find('(') {
        let (before, tuple) = rest.split_at(start);
        let relation = tuple.split_once(')').and_then(|(columns, after)| {
            let (op, after) = after.trim_start().split_once(' ')?;
            let markers = after.strip_prefix('(')?;
            let (markers, after) = markers.split_once(')')?;
            let columns: Vec<&str> = columns[1..].split(", ").collect();
            let n_markers = markers.split(", ").filter(|m| *m == "?").count();
            (n_markers == columns.len() && ["<", ">", "<=", ">="].contains(&op))
                .then_some((columns, op, after))
        });
        out.push_str(before);
        match relation {
            Some((columns, op, after)) => {
                let parts: Vec<String> = columns.iter().map(|c| format!("{c} {op} ?")).collect();
                out.push_str(&parts.join(" AND "));
                rest = after;
            }
            None => {
                out.push('(');
                rest = &tuple[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn tuple_relations_are_flattened_for_the_marker_check() {
    assert_eq!(
        flatten_tuple_relations("SELECT a FROM t WHERE d = ? AND (x, y) > (?, ?) LIMIT ?"),
        "SELECT a FROM t WHERE d = ? AND x > ? AND y > ? LIMIT ?"
    );
}

#[test]
fn every_positional_marker_binds_what_the_code_passes() {
    let session = session_id_to_i64(SessionId(u64::MAX - 7));
    let seq = 5_i64;
    let ticket_id = "T-1".to_owned();
    // The value types each call site passes (read.rs, write.rs, platform.rs).
    let calls: Vec<(&str, Box<dyn SerializeRow>)> = vec![
        ("select_customer", Box::new(("c-1",))),
        ("release_identity", Box::new(("wechat", "wx-1", "c-1"))),
        ("select_identity_owner", Box::new(("wechat", "wx-1"))),
        ("select_identities_of_customer", Box::new(("c-1",))),
        ("select_session", Box::new((session,))),
        (
            "select_sessions_of_customer",
            Box::new(("c-1", limit_to_cql(10))),
        ),
        (
            "select_open_sessions",
            Box::new((rows::open_session_bucket(SessionId(3)),)),
        ),
        ("remove_message", Box::new((session, seq))),
        (
            "select_messages",
            Box::new((session, seq, limit_to_cql(usize::MAX))),
        ),
        ("select_message_range", Box::new((session, seq, seq))),
        (
            "select_interactions",
            Box::new(("c-1", T0, limit_to_cql(10))),
        ),
        ("delete_interaction", Box::new(("c-1", T0, session))),
        (
            "select_interactions_by_day",
            Box::new((rows::interaction_day(T0), T0)),
        ),
        (
            "delete_interactions_by_day",
            Box::new((rows::interaction_day(T0), T0)),
        ),
        (
            "select_interaction_days",
            Box::new((rows::interaction_day(T0),)),
        ),
        (
            "delete_interaction_day",
            Box::new((rows::interaction_day(T0),)),
        ),
        ("select_agent", Box::new(("alice",))),
        ("select_agent_sip", Box::new(("alice",))),
        (
            "select_session_reply_route",
            Box::new((session_id_to_i64(SessionId(7)),)),
        ),
        (
            "select_session_sla_group",
            Box::new((session_id_to_i64(SessionId(7)),)),
        ),
        (
            "select_session_steps",
            Box::new((session_id_to_i64(SessionId(7)),)),
        ),
        (
            "select_sessions_by_queued_day",
            Box::new((19_000_i64, T0, 5_i64, T0 + 1, i64::MIN, limit_to_cql(10))),
        ),
        (
            "select_agent_log",
            Box::new((19_000_i64, T0, 5_i64, T0 + 1, i64::MIN, limit_to_cql(10))),
        ),
        ("select_agent_activity_before", Box::new(("alice", T0))),
        ("select_ticket", Box::new(("T-1",))),
        (
            "select_tickets_of_customer",
            Box::new(("c-1", limit_to_cql(10))),
        ),
        ("remove_ticket_event", Box::new((&ticket_id, seq))),
        (
            "select_ticket_events",
            Box::new(("T-1", seq, limit_to_cql(10))),
        ),
        ("select_ticket_event_seqs", Box::new(("T-1", seq, seq))),
        ("select_articles", Box::new((LIST_BUCKET,))),
        ("select_templates", Box::new((LIST_BUCKET,))),
        ("select_summary", Box::new((session,))),
        ("select_outbox", Box::new((0_i32,))),
        (
            "select_audit",
            Box::new((19_000_i64, T0, T0 + 1, limit_to_cql(10))),
        ),
    ];
    for (name, values) in &calls {
        let n_values = bind_positional(name, &**values).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(n_values > 0, "{name}");
    }
    for (name, cql) in ALL {
        if cql.text.contains('?') {
            assert!(
                calls.iter().any(|(n, _)| n == name),
                "{name} has positional markers but no bind check"
            );
        }
    }
    // A wrong type is caught: an int where the seq is a bigint.
    assert!(bind_positional("select_ticket_events", &("T-1", 5_i32, 10_i32)).is_err());
}

type TypeCheck = fn(&[ColumnSpec<'_>]) -> Result<(), String>;

fn decodes<R: for<'frame, 'metadata> DeserializeRow<'frame, 'metadata>>(
    specs: &[ColumnSpec<'_>],
) -> Result<(), String> {
    R::type_check(specs).map_err(|err| err.to_string())
}

/// The `SELECT` list of `name`, typed from its table.
fn selected_columns(name: &str, cql: &str) -> (String, Vec<(String, String)>) {
    let (table, columns) = table_of(name, cql);
    let list = cql
        .strip_prefix("SELECT ")
        .and_then(|rest| rest.split_once(" FROM "))
        .map(|(list, _)| list)
        .unwrap_or_else(|| panic!("{name} is not a SELECT"));
    let selected = list
        .split(", ")
        .map(|column| {
            let typ = columns
                .get(column)
                .unwrap_or_else(|| panic!("{name}: {table} has no column {column}"));
            (column.to_owned(), typ.clone())
        })
        .collect();
    (table, selected)
}

#[test]
fn every_select_decodes_into_the_row_read_from_it() {
    let reads: &[(&str, TypeCheck)] = &[
        ("select_customer", decodes::<CustomerRow>),
        ("select_identity_owner", decodes::<(String,)>),
        ("select_identities_of_customer", decodes::<IdentityRow>),
        ("select_session", decodes::<SessionRow>),
        ("select_sessions_of_customer", decodes::<(i64,)>),
        ("select_open_sessions", decodes::<(i64,)>),
        ("select_messages", decodes::<MessageRow>),
        ("select_message_range", decodes::<MessageRow>),
        ("select_interactions", decodes::<InteractionRow>),
        ("select_interactions_by_day", decodes::<InteractionByDayRow>),
        ("select_interaction_days", decodes::<(i64,)>),
        ("select_agents", decodes::<AgentRow>),
        ("select_agent", decodes::<AgentRow>),
        ("select_agent_sips", decodes::<AgentSipRow>),
        ("select_agent_sip", decodes::<AgentSipRow>),
        ("select_session_reply_route", decodes::<SessionRouteRow>),
        ("select_session_sla_group", decodes::<SessionSlaGroupRow>),
        ("select_groups", decodes::<GroupRow>),
        ("select_ticket", decodes::<TicketRow>),
        ("select_tickets_of_customer", decodes::<TicketRow>),
        ("select_ticket_events", decodes::<TicketEventRow>),
        ("select_ticket_event_seqs", decodes::<(i64,)>),
        ("select_articles", decodes::<ArticleRow>),
        ("select_templates", decodes::<TemplateRow>),
        ("select_summary", decodes::<SummaryRow>),
        ("select_outbox", decodes::<OutboxRow>),
        ("select_audit", decodes::<AuditRow>),
        ("select_session_steps", decodes::<SessionStepsRow>),
        (
            "select_sessions_by_queued_day",
            decodes::<SessionByQueuedDayRow>,
        ),
        ("select_agent_log", decodes::<AgentLogRow>),
        ("select_agent_activity_before", decodes::<AgentActivityRow>),
    ];
    let text = |name: &str| ALL.iter().find(|(n, _)| *n == name).unwrap().1.text;
    for (name, check) in reads {
        let (table, selected) = selected_columns(name, text(name));
        let specs: Vec<ColumnSpec<'_>> = selected
            .iter()
            .map(|(column, typ)| spec(&table, column, typ))
            .collect();
        check(&specs).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    for (name, cql) in ALL {
        if cql.text.starts_with("SELECT ") {
            assert!(
                reads.iter().any(|(n, _)| n == name),
                "{name} has no decode check"
            );
        }
    }
    // A wrong type is caught: the outbox's `dead` read as an int.
    let (table, _) = table_of("select_outbox", text("select_outbox"));
    let specs = [
        spec(&table, "bucket", "int"),
        spec(&table, "outbox_id", "text"),
        spec(&table, "next_attempt_at", "bigint"),
        spec(&table, "dead", "int"),
        spec(&table, "record", "text"),
    ];
    assert!(decodes::<OutboxRow>(&specs).is_err());
    // So is a missing column.
    assert!(decodes::<OutboxRow>(&specs[..4]).is_err());
}

#[test]
fn statement_text() {
    let text = |name: &str| ALL.iter().find(|(n, _)| *n == name).unwrap().1;
    assert_eq!(
        text("claim_identity"),
        Cql {
            text: "INSERT INTO customer_identities (channel, external_id, customer_id) \
                   VALUES (:channel, :external_id, :customer_id) IF NOT EXISTS",
            idempotent: false,
        }
    );
    assert_eq!(
        text("select_messages").text,
        "SELECT session_id, seq, sender_kind, sender_agent, body, client_message_id, channel, at \
         FROM session_messages WHERE session_id = ? AND seq > ? LIMIT ?"
    );
    assert_eq!(
        text("select_interactions").text,
        "SELECT customer_id, at, session_id, channel, summary FROM customer_interactions \
         WHERE customer_id = ? AND at > ? LIMIT ?"
    );
    assert_eq!(
        text("select_sessions_of_customer").text,
        "SELECT session_id FROM sessions_by_customer WHERE customer_id = ? LIMIT ?"
    );
    assert_eq!(
        text("append_ticket_event"),
        Cql {
            text: "INSERT INTO ticket_events (ticket_id, seq, record) \
                   VALUES (:ticket_id, :seq, :record) IF NOT EXISTS",
            idempotent: false,
        }
    );
    assert_eq!(
        text("select_ticket_events").text,
        "SELECT ticket_id, seq, record FROM ticket_events WHERE ticket_id = ? AND seq > ? LIMIT ?"
    );
    assert_eq!(
        text("select_tickets_of_customer").text,
        "SELECT ticket_id, customer_id, created_at, record FROM tickets_by_customer \
         WHERE customer_id = ? LIMIT ?"
    );
    // Deletes of the logged batch are plain (idempotent) deletes by key.
    for name in ["delete_article", "delete_template", "delete_outbox"] {
        assert!(text(name).idempotent && text(name).text.starts_with("DELETE FROM "));
    }
    let tables = tables();
    for (name, cql) in ALL {
        // Exactly the lightweight transactions are marked not idempotent.
        assert_eq!(
            cql.idempotent,
            !cql.text.contains(" IF "),
            "{name}: idempotence must follow IF"
        );
        let table = cql
            .text
            .split_whitespace()
            .skip_while(|w| *w != "INTO" && *w != "FROM")
            .nth(1)
            .unwrap();
        assert!(tables.contains_key(table), "{name}: unknown table {table}");
        // Reads name their columns: a new column never changes what a row decodes to.
        assert!(!cql.text.contains('*'), "{name} selects *");
    }
}
