//! PROTOCOL.md stays true to the code: every client example is accepted by a
//! live server's parser, every malformed example gets the error it documents,
//! every server example is a JSON object with a `type`, the error codes in
//! the doc's tables are exactly the ones the code produces, the limits
//! table gives the configuration's defaults, every frame type either side
//! can send has its entry (§4, §5), §10 gives the statuses the OpenAPI
//! document does, and the rules of §2, §3 and §8 about `seq`s and the
//! backlog hold on a live server (`protocol_doc/rules.rs`).
//!
//! The doc marks its examples by the info string of their code blocks (see
//! the table at the top of PROTOCOL.md): `json client customer`,
//! `json server agent`, `json http`, `text malformed customer <code>` and
//! `transcript` (lines `customer -> {…}` / `agent <- {…}`).

use crate::common;
#[path = "protocol_doc/rules.rs"]
mod rules;

use std::collections::BTreeSet;

use actors::{CallEnd, CallEvent, Event, EventKind};
use common::{Client, TestServer};
use engine::channel::Channel;
use engine::ids::{AgentId, GroupId, SessionId};
use engine::message::Sender;
use gateway::Config;
use gateway::auth::Role;
use gateway::wire::WireSession;
use gateway::wire::event::{Viewer, event_frame};
use gateway::ws::frames::Reply;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const PROTOCOL: &str = include_str!("../../../PROTOCOL.md");

/// Where error codes come from, as (path, text): the forward check looks
/// each documented code up in all of them.
const SOURCES: [(&str, &str); 14] = [
    ("gateway/src/error.rs", include_str!("../../src/error.rs")),
    (
        "gateway/src/ws/agent/softphone.rs",
        include_str!("../../src/ws/agent/softphone.rs"),
    ),
    (
        "gateway/src/access/mod.rs",
        include_str!("../../src/access/mod.rs"),
    ),
    (
        "gateway/src/listener.rs",
        include_str!("../../src/listener.rs"),
    ),
    (
        "gateway/src/rest/mod.rs",
        include_str!("../../src/rest/mod.rs"),
    ),
    (
        "gateway/src/ws/frames.rs",
        include_str!("../../src/ws/frames.rs"),
    ),
    (
        "gateway/src/ws/link.rs",
        include_str!("../../src/ws/link.rs"),
    ),
    (
        "gateway/src/ws/customer.rs",
        include_str!("../../src/ws/customer.rs"),
    ),
    (
        "gateway/src/ws/agent.rs",
        include_str!("../../src/ws/agent.rs"),
    ),
    (
        "gateway/src/ws/replies.rs",
        include_str!("../../src/ws/replies.rs"),
    ),
    ("gateway/src/rate.rs", include_str!("../../src/rate.rs")),
    (
        "actors/src/error.rs",
        include_str!("../../../actors/src/error.rs"),
    ),
    ("gateway/src/auth.rs", include_str!("../../src/auth.rs")),
    (
        "gateway/src/access/customers.rs",
        include_str!("../../src/access/customers.rs"),
    ),
];

/// The WebSocket modules, whose frame-level codes the error table must list.
const WS_SOURCES: [&str; 6] = [
    include_str!("../../src/ws/frames.rs"),
    include_str!("../../src/ws/link.rs"),
    include_str!("../../src/ws/customer.rs"),
    include_str!("../../src/ws/agent.rs"),
    include_str!("../../src/ws/replies.rs"),
    include_str!("../../src/rate.rs"),
];

/// Error codes that mean the parser refused a client frame.
const PARSER_CODES: [&str; 4] = ["bad_json", "missing_type", "unknown_type", "invalid_frame"];

/// The `request_id` of the ping sent after each example.
const PROBE: &str = "protocol-doc-probe";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Customer,
    Agent,
}

/// One marked example of PROTOCOL.md, with the line it starts on.
#[derive(Debug)]
enum Example {
    /// A frame a client sends.
    Client {
        endpoint: Endpoint,
        text: String,
        line: usize,
    },
    /// A frame that is wrong on purpose, and the error code it must get.
    Malformed {
        endpoint: Endpoint,
        text: String,
        code: String,
        line: usize,
    },
    /// A frame the server sends.
    Server { text: String, line: usize },
    /// The JSON body of a refused upgrade.
    Http { text: String, line: usize },
}

fn endpoint(name: &str, line: usize) -> Endpoint {
    match name {
        "customer" => Endpoint::Customer,
        "agent" => Endpoint::Agent,
        other => panic!("PROTOCOL.md:{line}: unknown endpoint `{other}` in an example"),
    }
}

/// Every marked example, in document order. A block whose info string looks
/// like a marking but does not parse is an error, so that a typo does not
/// silently drop an example from the checks.
fn examples() -> Vec<Example> {
    let mut examples = Vec::new();
    let mut lines = PROTOCOL.lines().enumerate();
    while let Some((index, line)) = lines.next() {
        let Some(info) = line.trim_start().strip_prefix("```") else {
            continue;
        };
        let info: Vec<&str> = info.split_whitespace().collect();
        let first_line = index + 2;
        let mut body = Vec::new();
        for (_, line) in lines.by_ref() {
            if line.trim_start().starts_with("```") {
                break;
            }
            body.push(line.trim_start());
        }
        let text = body.join("\n");
        match info.as_slice() {
            [] => {}
            ["json", "client", name] => examples.push(Example::Client {
                endpoint: endpoint(name, first_line),
                text,
                line: first_line,
            }),
            ["json", "server", name] => {
                endpoint(name, first_line);
                examples.push(Example::Server {
                    text,
                    line: first_line,
                });
            }
            // Checked by `the_rest_history_example_holds_the_socket_examples`.
            ["json", "rest", name] => {
                endpoint(name, first_line);
            }
            ["json", "http"] => examples.push(Example::Http {
                text,
                line: first_line,
            }),
            ["text", "malformed", name, code] => examples.push(Example::Malformed {
                endpoint: endpoint(name, first_line),
                text,
                code: code.to_string(),
                line: first_line,
            }),
            ["transcript"] => {
                for (offset, entry) in body.iter().enumerate() {
                    let line = first_line + offset;
                    if entry.is_empty() {
                        continue;
                    }
                    let (who, rest) = entry
                        .split_once(' ')
                        .unwrap_or_else(|| panic!("PROTOCOL.md:{line}: not `who -> frame`"));
                    let who = endpoint(who, line);
                    let rest = rest.trim_start();
                    if let Some(frame) = rest.strip_prefix("->") {
                        examples.push(Example::Client {
                            endpoint: who,
                            text: frame.trim().to_string(),
                            line,
                        });
                    } else if let Some(frame) = rest.strip_prefix("<-") {
                        examples.push(Example::Server {
                            text: frame.trim().to_string(),
                            line,
                        });
                    } else {
                        panic!("PROTOCOL.md:{line}: a transcript line needs `->` or `<-`");
                    }
                }
            }
            ["json", ..] | ["text", "malformed", ..] | ["transcript", ..] => {
                panic!("PROTOCOL.md:{first_line}: unknown example marking {info:?}")
            }
            _ => {} // Prose blocks (shell, TOML, …) are not examples.
        }
    }
    examples
}

/// The snake_case codes of the table between `<!-- {name}:begin -->` and
/// `<!-- {name}:end -->`: the first backticked word of each data row.
fn table_codes(name: &str) -> BTreeSet<String> {
    let rows = table_rows(name);
    let codes: BTreeSet<String> = rows
        .iter()
        .map(|row| {
            backticked(row)
                .into_iter()
                .next()
                .unwrap_or_else(|| panic!("PROTOCOL.md table `{name}`: no code in row {row}"))
        })
        .collect();
    assert_eq!(codes.len(), rows.len(), "table `{name}` lists a code twice");
    codes
}

/// The data rows (not the header, not the separator) of a marked table.
fn table_rows(name: &str) -> Vec<&'static str> {
    let begin = format!("<!-- {name}:begin -->");
    let end = format!("<!-- {name}:end -->");
    // The markers stand on lines of their own; prose may quote them.
    let rows: Vec<&str> = PROTOCOL
        .lines()
        .skip_while(|line| line.trim() != begin)
        .skip(1)
        .take_while(|line| line.trim() != end)
        .filter(|line| line.starts_with('|'))
        .skip(2)
        .collect();
    assert!(
        PROTOCOL.lines().any(|line| line.trim() == end),
        "PROTOCOL.md has no line `{end}`"
    );
    assert!(!rows.is_empty(), "table `{name}` is missing or empty");
    rows
}

/// The backticked snake_case words of `text`, in order.
fn backticked(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|word| is_code(word))
        .map(str::to_string)
        .collect()
}

fn is_code(word: &str) -> bool {
    !word.is_empty() && word.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
}

/// The string literal right after each `marker` in `source` (whitespace
/// allowed in between), when it is a snake_case code.
fn literals_after(source: &str, marker: &str) -> Vec<String> {
    source
        .match_indices(marker)
        .filter_map(|(at, _)| literal_at(source[at + marker.len()..].trim_start()))
        .collect()
}

/// The code literal `rest` starts with, if any.
fn literal_at(rest: &str) -> Option<String> {
    let rest = rest.strip_prefix('"')?;
    let word = &rest[..rest.find('"')?];
    is_code(word).then(|| word.to_string())
}

/// Every code literal in `body`, except the `what` names of limits.
fn code_literals(body: &str) -> BTreeSet<String> {
    let mut codes = BTreeSet::new();
    let mut rest = body;
    while let Some(start) = rest.find('"') {
        let before = rest[..start].trim_end();
        let after = &rest[start + 1..];
        let Some(len) = after.find('"') else { break };
        let word = &after[..len];
        if is_code(word) && !before.ends_with("what:") {
            codes.insert(word.to_string());
        }
        rest = &after[len + 1..];
    }
    codes
}

/// The text of the function that starts at `signature`, up to the line
/// `closing` that ends it.
fn function_body<'a>(source: &'a str, signature: &str, closing: &str) -> &'a str {
    let start = source
        .find(signature)
        .unwrap_or_else(|| panic!("`{signature}` not found"));
    let len = source[start..]
        .find(closing)
        .unwrap_or_else(|| panic!("end of `{signature}` not found"));
    &source[start..start + len]
}

/// Codes given to `HttpError::new(StatusCode::X, "code", …)` and through
/// the `forbidden` and `bad_request` helpers.
fn http_error_codes(source: &str) -> BTreeSet<String> {
    let mut codes = BTreeSet::new();
    for (at, _) in source.match_indices("StatusCode::") {
        let rest = &source[at + "StatusCode::".len()..];
        let rest = rest.trim_start_matches(|c: char| c.is_ascii_uppercase() || c == '_');
        if let Some(rest) = rest.trim_start().strip_prefix(',')
            && let Some(code) = literal_at(rest.trim_start())
        {
            codes.insert(code);
        }
    }
    if source.contains("HttpError::forbidden(") {
        codes.insert("forbidden".into());
    }
    if source.contains("HttpError::bad_request(") {
        codes.insert("invalid".into());
    }
    codes
}

fn source(path: &str) -> &'static str {
    SOURCES
        .iter()
        .find(|(name, _)| *name == path)
        .map(|(_, text)| *text)
        .unwrap_or_else(|| panic!("{path} is not in SOURCES"))
}

#[test]
fn the_error_tables_list_exactly_the_codes_the_code_produces() {
    let frame_table = table_codes("error-codes");
    let upgrade_table = table_codes("upgrade-codes");

    // Forward: every documented code exists in the source.
    for code in frame_table.iter().chain(&upgrade_table) {
        let quoted = format!("\"{code}\"");
        assert!(
            SOURCES.iter().any(|(_, text)| text.contains(&quoted)),
            "PROTOCOL.md documents `{code}`, which no source file produces"
        );
    }

    // Backward, frame level: what `classify` (and `ApiError::code`, which it
    // delegates to) and the WebSocket modules put in error frames.
    let mut frame_codes = code_literals(function_body(
        source("gateway/src/error.rs"),
        "pub fn classify",
        "\n}\n",
    ));
    frame_codes.extend(code_literals(function_body(
        source("actors/src/error.rs"),
        "pub fn code(&self)",
        "\n    }\n",
    )));
    for ws in WS_SOURCES {
        frame_codes.extend(literals_after(ws, "code: "));
        frame_codes.extend(literals_after(ws, "error("));
    }
    assert!(
        frame_codes.len() >= 15,
        "the extraction found too little: {frame_codes:?}"
    );
    let missing: Vec<_> = frame_codes.difference(&frame_table).collect();
    assert!(
        missing.is_empty(),
        "the error table of PROTOCOL.md lacks {missing:?}"
    );

    // Backward, upgrade level: refusals of the upgrade handlers, the token
    // check, and the connection cap.
    let mut upgrade_codes = BTreeSet::new();
    for ws in WS_SOURCES {
        upgrade_codes.extend(http_error_codes(ws));
    }
    let error_rs = source("gateway/src/error.rs");
    let classify_at = error_rs.find("pub fn classify").unwrap();
    upgrade_codes.extend(http_error_codes(&error_rs[..classify_at]));
    let access = source("gateway/src/access/mod.rs");
    upgrade_codes.extend(http_error_codes(function_body(
        access,
        "pub async fn agent_profile",
        "\n    }\n",
    )));
    upgrade_codes.extend(literals_after(
        source("gateway/src/listener.rs"),
        "\"code\":",
    ));
    for expected in [
        "unauthorized",
        "forbidden",
        "invalid",
        "unknown_customer",
        "too_many_connections",
    ] {
        assert!(
            upgrade_codes.contains(expected),
            "extraction lost `{expected}`: {upgrade_codes:?}"
        );
    }
    let missing: Vec<_> = upgrade_codes.difference(&upgrade_table).collect();
    assert!(
        missing.is_empty(),
        "the upgrade table of PROTOCOL.md lacks {missing:?}"
    );

    // What `watch_ticket` may answer: the ticket checks of the data platform.
    let platform_access = source("gateway/src/access/customers.rs");
    let mut ticket_codes =
        http_error_codes(function_body(platform_access, "fn unknown_ticket", "\n}\n"));
    ticket_codes.extend(http_error_codes(function_body(
        platform_access,
        "pub async fn check_ticket",
        "\n}\n",
    )));
    ticket_codes.extend(http_error_codes(function_body(
        source("gateway/src/error.rs"),
        "impl From<TicketError> for HttpError",
        "\n}\n",
    )));
    for expected in ["unknown_ticket", "not_your_ticket"] {
        assert!(
            ticket_codes.contains(expected),
            "extraction lost `{expected}`: {ticket_codes:?}"
        );
    }
    let missing: Vec<_> = ticket_codes.difference(&frame_table).collect();
    assert!(
        missing.is_empty(),
        "the error table of PROTOCOL.md lacks {missing:?} (watch_ticket)"
    );

    // What `history` may answer through the access checks is in one table or the other.
    for code in http_error_codes(access) {
        assert!(
            frame_table.contains(&code) || upgrade_table.contains(&code),
            "PROTOCOL.md does not document `{code}` (gateway/src/access/mod.rs)"
        );
    }

    // Every error example uses a documented code.
    for example in examples() {
        if let Example::Server { text, line } = example {
            let frame: Value = serde_json::from_str(&text).unwrap();
            if frame["type"] == "error" {
                let code = frame["code"].as_str().unwrap_or_default();
                assert!(
                    frame_table.contains(code),
                    "PROTOCOL.md:{line}: `{code}` is not in the error table"
                );
            }
        }
    }
}

#[test]
fn the_limits_table_gives_the_defaults() {
    let defaults = serde_json::to_value(Config::default()).unwrap();
    let rows = table_rows("limits");
    for row in &rows {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let key = cells[1].trim_matches('`');
        let (section, name) = key
            .split_once('.')
            .unwrap_or_else(|| panic!("limits table: `{key}` is not section.key"));
        let expected = &defaults[section][name];
        assert!(
            !expected.is_null(),
            "limits table: `{key}` is not a configuration key"
        );
        let documented: String = cells[2].chars().take_while(char::is_ascii_digit).collect();
        assert_eq!(
            documented,
            expected.to_string(),
            "limits table: default of `{key}`"
        );
    }
    assert!(rows.len() >= 10, "the limits table lost rows");
}

#[test]
fn server_and_http_examples_are_json_objects_with_their_fields() {
    let examples = examples();
    let mut n_server = 0;
    for example in &examples {
        match example {
            Example::Server { text, line } => {
                n_server += 1;
                let frame: Value = serde_json::from_str(text)
                    .unwrap_or_else(|err| panic!("PROTOCOL.md:{line}: not JSON ({err}): {text}"));
                assert!(
                    frame["type"].is_string(),
                    "PROTOCOL.md:{line}: no string `type`: {text}"
                );
                if let Some(session) = frame.get("session") {
                    assert!(
                        session.is_string(),
                        "PROTOCOL.md:{line}: session ids are strings"
                    );
                }
                if let Some(seq) = frame.get("seq") {
                    assert!(seq.is_u64(), "PROTOCOL.md:{line}: `seq` is an integer");
                }
            }
            Example::Http { text, line } => {
                let body: Value = serde_json::from_str(text)
                    .unwrap_or_else(|err| panic!("PROTOCOL.md:{line}: not JSON ({err}): {text}"));
                assert!(body["code"].is_string(), "PROTOCOL.md:{line}: no `code`");
                assert!(
                    body["message"].is_string(),
                    "PROTOCOL.md:{line}: no `message`"
                );
            }
            Example::Client { .. } | Example::Malformed { .. } => {}
        }
    }
    assert!(
        n_server >= 50,
        "found only {n_server} server examples; is the marking intact?"
    );
}

/// A fresh connection to `endpoint`: cust-003 (Emma Lee) or chen.jie.
async fn connect(test: &TestServer, endpoint: Endpoint) -> Client {
    match endpoint {
        Endpoint::Customer => test.customer("cust-003").await,
        Endpoint::Agent => {
            let token = test.token("chen.jie", Role::Agent);
            Client::connect(&test.ws_url("/ws/agent", &token)).await
        }
    }
}

/// Sends `text` as it stands in the doc, then a ping; returns every frame
/// that came before the pong. The server reads frames in order and answers
/// each before reading the next, so whatever the example caused is in there.
async fn send_example(client: &mut Client, text: &str) -> Vec<Value> {
    client
        .send_raw(Message::Text(text.to_string().into()))
        .await;
    client
        .send(json!({"type": "ping", "request_id": PROBE}))
        .await;
    client
        .wait_for("the probe's pong", |frame| frame["request_id"] == PROBE)
        .await;
    client.take_pending()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_examples_are_accepted_by_a_live_server() {
    let test = TestServer::start(|_| {}).await;
    let mut n_client = 0;
    let mut n_malformed = 0;
    for example in examples() {
        match example {
            Example::Client {
                endpoint,
                text,
                line,
            } => {
                n_client += 1;
                assert!(
                    serde_json::from_str::<Value>(&text)
                        .is_ok_and(|frame| frame["type"].is_string()),
                    "PROTOCOL.md:{line}: a client example must be a JSON object with a `type`: {text}"
                );
                let mut client = connect(&test, endpoint).await;
                let replies = send_example(&mut client, &text).await;
                for reply in &replies {
                    let code = reply["code"].as_str().unwrap_or_default();
                    assert!(
                        !(reply["type"] == "error" && PARSER_CODES.contains(&code)),
                        "PROTOCOL.md:{line}: the server refused {text}\nwith {reply}"
                    );
                }
                client.close().await;
            }
            Example::Malformed {
                endpoint,
                text,
                code,
                line,
            } => {
                n_malformed += 1;
                let mut client = connect(&test, endpoint).await;
                let replies = send_example(&mut client, &text).await;
                let error = replies
                    .iter()
                    .find(|reply| reply["type"] == "error")
                    .unwrap_or_else(|| {
                        panic!("PROTOCOL.md:{line}: no error for {text}: {replies:?}")
                    });
                assert_eq!(error["code"], code.as_str(), "PROTOCOL.md:{line}: {text}");
                client.close().await;
            }
            Example::Server { .. } | Example::Http { .. } => {}
        }
    }
    assert!(
        n_client >= 40,
        "found only {n_client} client examples; is the marking intact?"
    );
    assert!(
        n_malformed >= 10,
        "found only {n_malformed} malformed examples"
    );
    test.server.shutdown().await.unwrap();
}

/// The lines of the section whose heading starts with `heading` (e.g.
/// `### 4.1`), up to the next heading of the same or a higher level.
fn section(heading: &str) -> Vec<&'static str> {
    let level = heading.split(' ').next().unwrap().len();
    let mut lines = PROTOCOL
        .lines()
        .skip_while(|line| !line.starts_with(heading));
    assert!(
        lines.next().is_some(),
        "PROTOCOL.md has no section `{heading}`"
    );
    let mut in_code = false;
    let mut body = Vec::new();
    for line in lines {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        }
        let hashes = line.split(' ').next().unwrap_or_default();
        let is_heading = !hashes.is_empty() && hashes.chars().all(|c| c == '#');
        if !in_code && is_heading && hashes.len() <= level {
            break;
        }
        body.push(line);
    }
    body
}

/// The frame types a section gives an entry of their own: the backticked
/// words of its `####` headings.
fn heading_types(lines: &[&str]) -> BTreeSet<String> {
    lines
        .iter()
        .filter_map(|line| line.strip_prefix("#### "))
        .flat_map(backticked)
        .collect()
}

/// The first backticked word of each row of the section's first table.
fn table_types(lines: &[&str]) -> BTreeSet<String> {
    lines
        .iter()
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .skip(2)
        .map(|row| {
            backticked(row.split('|').nth(1).unwrap_or_default())
                .into_iter()
                .next()
                .unwrap_or_else(|| panic!("PROTOCOL.md: no frame type in row {row}"))
        })
        .collect()
}

/// The `"…"` patterns of the `match frame.kind.as_str()` arms of `on_frame`
/// in `source`: the frame types the endpoint dispatches.
fn dispatched_types(source: &str) -> BTreeSet<String> {
    let body = function_body(source, "async fn on_frame", "\n    }\n");
    let mut types = BTreeSet::new();
    for line in body.lines() {
        let line = line.trim_start();
        if !(line.starts_with('"') || line.starts_with("kind @ (")) {
            continue;
        }
        let Some((pattern, _)) = line.split_once("=>") else {
            continue;
        };
        types.extend(pattern.split('"').skip(1).step_by(2).map(str::to_string));
    }
    types
}

/// The position of each event kind; exhaustive, so that a new kind does not
/// compile until it is here, and then needs a sample in [`every_event`].
fn event_kind_idx(kind: &EventKind) -> usize {
    match kind {
        EventKind::Message { .. } => 0,
        EventKind::Queued { .. } => 1,
        EventKind::Offered { .. } => 2,
        EventKind::OfferLapsed { .. } => 3,
        EventKind::Assigned { .. } => 4,
        EventKind::Transferred { .. } => 5,
        EventKind::WrapUp => 6,
        EventKind::Closed { .. } => 7,
        EventKind::Abandoned => 8,
        EventKind::Typing { .. } => 9,
        EventKind::Rated { .. } => 10,
        EventKind::QueuePosition(_) => 11,
        EventKind::Call(_) => 12,
        EventKind::Delivery(_) => 13,
        EventKind::Steered { .. } => 14,
        EventKind::Monitored { .. } => 15,
        EventKind::Whisper { .. } => 16,
        EventKind::ResponseBreached { .. } => 17,
        EventKind::ResponseDue { .. } => 18,
    }
}

const N_EVENT_KINDS: usize = 19;

/// One event of every kind (with every optional field set), checked to
/// cover [`event_kind_idx`].
fn every_event() -> Vec<Event> {
    let agent = AgentId::new("chen.jie");
    let kinds = vec![
        EventKind::Message {
            sender: Sender::Customer,
            body: "Where is my order?".into(),
            client_message_id: Some("c-1".into()),
            channel: Channel::Web,
        },
        EventKind::Message {
            sender: Sender::Agent(agent.clone()),
            body: "It ships today.".into(),
            client_message_id: Some("a-1".into()),
            channel: Channel::Web,
        },
        EventKind::Queued {
            group: GroupId::new("default"),
        },
        EventKind::Offered {
            agent: agent.clone(),
            deadline: 1_795_514_731_680,
        },
        EventKind::OfferLapsed {
            agent: agent.clone(),
        },
        EventKind::Assigned {
            agent: agent.clone(),
            display_name: "Chen Jie".into(),
        },
        EventKind::Transferred {
            from: agent.clone(),
        },
        EventKind::WrapUp,
        EventKind::Closed {
            summary: Some("address changed".into()),
        },
        EventKind::Abandoned,
        EventKind::Typing {
            sender: Sender::Customer,
        },
        EventKind::Rated {
            score: 5,
            comment: Some("fast".into()),
        },
        EventKind::QueuePosition(actors::QueueStatus {
            group: GroupId::new("default"),
            position: 1,
            n_waiting: 1,
            estimated_wait_secs: 30,
        }),
        EventKind::Call(CallEvent::Started {
            from: "+8613900000009".into(),
            digits: "2".into(),
        }),
        EventKind::Call(CallEvent::Ringing {
            agent: agent.clone(),
        }),
        EventKind::Call(CallEvent::Answered {
            agent: agent.clone(),
        }),
        EventKind::Call(CallEvent::Held),
        EventKind::Call(CallEvent::Resumed),
        EventKind::Call(CallEvent::Digits {
            digits: "1#".into(),
        }),
        EventKind::Call(CallEvent::Ended {
            by: CallEnd::Caller,
            talk_ms: 95_000,
        }),
        EventKind::Delivery(actors::DeliveryReport {
            of: 2,
            account: "wx-main".into(),
            state: actors::DeliveryState::Failed,
            code: Some("45015".into()),
            reason: Some(
                "WeChat refuses: the customer has not written in the last 48 hours".into(),
            ),
        }),
        EventKind::Steered {
            by: engine::supervision::Actor::Supervisor(AgentId::new("wang.min")),
            steer: engine::supervision::Steer::Reassigned {
                group: GroupId::new("phone_support"),
                agent: Some(agent.clone()),
                priority: 0,
            },
            reason: "speaks Cantonese".into(),
        },
        EventKind::Monitored {
            by: engine::supervision::Actor::Supervisor(AgentId::new("wang.min")),
            mode: Some(engine::supervision::MonitorMode::Whisper),
        },
        EventKind::Whisper {
            from: AgentId::new("wang.min"),
            body: "Offer the express refund".into(),
            client_message_id: Some("s-1".into()),
        },
        EventKind::ResponseBreached {
            kind: engine::routing::ResponseKind::First,
            due: 1_795_514_754_169,
            since: 1_795_514_724_169,
            group: Some(GroupId::new("default")),
        },
        EventKind::ResponseDue {
            kind: Some(engine::routing::ResponseKind::Next),
            due: Some(1_795_514_754_169),
        },
    ];
    let covered: BTreeSet<usize> = kinds.iter().map(event_kind_idx).collect();
    assert_eq!(
        covered,
        (0..N_EVENT_KINDS).collect(),
        "a sample of every event kind"
    );
    kinds
        .into_iter()
        .enumerate()
        .map(|(idx, kind)| Event {
            session: SessionId(7_530_934_589_636_739_072),
            seq: idx as u64 + 1,
            at: 1_795_514_724_169,
            kind,
        })
        .collect()
}

/// The position of each reply; exhaustive like [`event_kind_idx`].
fn reply_idx(reply: &Reply) -> usize {
    match reply {
        Reply::Ack { .. } => 0,
        Reply::Ok { .. } => 1,
        Reply::Error { .. } => 2,
        Reply::Pong { .. } => 3,
    }
}

/// The `type` of every reply both endpoints send, by serializing one of each.
fn reply_types() -> BTreeSet<String> {
    let replies = [
        Reply::Ack {
            request_id: None,
            client_message_id: "c-1".into(),
            session: WireSession(SessionId(1)),
            seq: 1,
            duplicate: false,
        },
        Reply::Ok { request_id: None },
        Reply::Error {
            request_id: None,
            client_message_id: None,
            code: "invalid",
            message: String::new(),
        },
        Reply::Pong { request_id: None },
    ];
    let covered: BTreeSet<usize> = replies.iter().map(reply_idx).collect();
    assert_eq!(covered, (0..4).collect(), "a sample of every reply");
    replies
        .iter()
        .map(|reply| {
            serde_json::to_value(reply).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// Every frame `type` the server can send on `endpoint`: replies, session
/// events as `viewer` sees them, the frames each handler builds itself
/// (`welcome`, `queue_status`, `presence`, …) and the data platform's pushes.
fn server_types(endpoint: Endpoint) -> BTreeSet<String> {
    let (viewer, handler) = match endpoint {
        Endpoint::Customer => (Viewer::Customer, source("gateway/src/ws/customer.rs")),
        Endpoint::Agent => (Viewer::Staff, source("gateway/src/ws/agent.rs")),
    };
    let mut types = reply_types();
    for event in every_event() {
        if let Some(frame) = event_frame(&event, viewer) {
            types.insert(frame.kind().to_string());
        }
    }
    for marker in ["kind: ", "listing(", "\"type\": "] {
        types.extend(literals_after(handler, marker));
    }
    if endpoint == Endpoint::Agent {
        // The browser softphone's replies (`ws/agent/softphone.rs`).
        types.extend(literals_after(
            source("gateway/src/ws/agent/softphone.rs"),
            "listing(",
        ));
    }
    // The data platform's notices (`notice_frame`): ticket changes go to
    // customers and agents alike, 360° views (pushed with an offer) to
    // agents only.
    let notice_types =
        |function: &str| literals_after(function_body(WIRE, function, "\n}\n"), "\"type\": ");
    types.extend(notice_types("pub fn ticket_notice"));
    if endpoint == Endpoint::Agent {
        types.extend(notice_types("pub fn customer_view_notice"));
        types.extend(notice_types("pub fn presence_forced_notice"));
    }
    types
}

const WIRE: &str = include_str!("../../src/wire/platform.rs");

#[test]
fn every_client_frame_type_has_its_entry_and_every_entry_is_taken() {
    let endpoints = [
        (
            "### 4.1",
            &gateway::ws::customer::CLIENT_FRAME_TYPES[..],
            source("gateway/src/ws/customer.rs"),
        ),
        (
            "### 5.1",
            &gateway::ws::agent::CLIENT_FRAME_TYPES[..],
            source("gateway/src/ws/agent.rs"),
        ),
    ];
    for (heading, listed, handler) in endpoints {
        let code: BTreeSet<String> = listed.iter().map(|kind| kind.to_string()).collect();
        assert_eq!(
            dispatched_types(handler),
            code,
            "{heading}: CLIENT_FRAME_TYPES and the dispatch of on_frame differ"
        );
        let lines = section(heading);
        assert_eq!(
            table_types(&lines),
            code,
            "PROTOCOL.md {heading}: the table lists other client frames than the code takes"
        );
        assert_eq!(
            heading_types(&lines),
            code,
            "PROTOCOL.md {heading}: each client frame needs a `####` entry"
        );
    }
}

#[test]
fn every_server_frame_type_has_its_entry_and_every_entry_is_sent() {
    let endpoints = [
        (Endpoint::Customer, ["### 4.2", "### 4.3", "### 4.4"]),
        (Endpoint::Agent, ["### 5.2", "### 5.3", "### 5.4"]),
    ];
    for (endpoint, headings) in endpoints {
        let code = server_types(endpoint);
        assert!(
            code.len() >= 12,
            "the extraction found too little: {code:?}"
        );
        let documented: BTreeSet<String> = headings
            .iter()
            .flat_map(|heading| heading_types(&section(heading)))
            .collect();
        assert_eq!(
            documented, code,
            "PROTOCOL.md {headings:?}: the `####` entries differ from the frames the server sends on {endpoint:?}"
        );
    }
}

/// §2: one encoding. A whole conversation as the REST history gives it is,
/// object for object, what the sockets sent: the staff's history as the
/// agent's `history` reply, the customer's as the customer's socket showed
/// it live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_history_and_sockets_encode_each_event_with_the_same_fields() {
    let test = TestServer::start(|_| {}).await;
    let mut agent = test.available_agent("chen.jie").await;
    let mut customer = test.customer("cust-003").await;
    customer.hello(json!({})).await;
    let ack = customer.say(json!({}), "c-1", "Where is my order?").await;
    let session = common::session_of(&ack);
    common::accept_offer(&mut agent, &session).await;
    agent
        .say(json!({"session": session}), "a-1", "It ships today.")
        .await;
    for (kind, summary) in [("wrap_up", "shipped"), ("close", "order shipped")] {
        let reply = agent
            .request(json!({"type": kind, "session": session, "summary": summary}))
            .await;
        assert_eq!(reply["type"], "ok", "{reply}");
    }
    let rated = customer
        .request(json!({"type": "rate", "session": session, "score": 5, "comment": "fast"}))
        .await;
    assert_eq!(rated["type"], "ok", "{rated}");
    agent.expect("rated").await;
    let rated_on_customer_socket = customer.expect("rated").await;

    let stored = |frames: Vec<Value>| -> Vec<Value> {
        frames
            .into_iter()
            .filter(|frame| {
                frame["session"] == session.as_str()
                    && !["ack", "queue_status", "typing"].contains(&frame["type"].as_str().unwrap())
            })
            .collect()
    };
    agent.take_pending();
    let done = agent
        .request(json!({"type": "history", "session": session}))
        .await;
    assert_eq!(done["type"], "ok", "{done}");
    let agent_history = stored(agent.take_pending());
    let mut on_customer_socket = customer.take_pending();
    on_customer_socket.push(rated_on_customer_socket);
    let on_customer_socket = stored(on_customer_socket);
    let path = format!("/api/v1/sessions/{session}");
    let staff_rest = test
        .get_json(&path, &test.token("wang.min", Role::Supervisor))
        .await;
    let customer_rest = test
        .get_json(&path, &test.token("cust-003", Role::Customer))
        .await;

    assert_eq!(
        staff_rest["events"],
        Value::Array(agent_history.clone()),
        "staff: REST history and the agent's `history`"
    );
    let kinds = |events: &[Value]| -> BTreeSet<String> {
        events
            .iter()
            .map(|event| event["type"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        kinds(&agent_history),
        [
            "assigned", "closed", "message", "offer", "queued", "rated", "wrap_up"
        ]
        .map(String::from)
        .into(),
    );
    assert_eq!(
        customer_rest["events"],
        Value::Array(on_customer_socket),
        "customer: REST history and what the customer's socket showed"
    );
    let customer_events = customer_rest["events"].as_array().unwrap();
    assert!(
        customer_events
            .iter()
            .all(
                |event| !["offer", "offer_withdrawn"].contains(&event["type"].as_str().unwrap())
                    && event.get("agent").is_none()
                    && event.get("group").is_none()
                    && event.get("summary").is_none()
            ),
        "customers see no offers and no agents-only fields: {customer_rest}"
    );
    test.server.shutdown().await.unwrap();
}

/// The bodies of the code blocks marked `marking`, with their first line.
fn blocks_marked(marking: &str) -> Vec<(usize, Value)> {
    let mut blocks = Vec::new();
    let mut lines = PROTOCOL.lines().enumerate();
    while let Some((index, line)) = lines.next() {
        if line.trim() != format!("```{marking}") {
            continue;
        }
        let body: Vec<&str> = lines
            .by_ref()
            .map(|(_, line)| line.trim())
            .take_while(|line| !line.starts_with("```"))
            .collect();
        let text = body.join("\n");
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|err| panic!("PROTOCOL.md:{}: not JSON: {err}", index + 2));
        blocks.push((index + 2, value));
    }
    blocks
}

/// §2: the REST history example holds the same objects as the socket examples.
#[test]
fn the_rest_history_example_holds_the_socket_examples() {
    let on_socket: Vec<Value> = blocks_marked("json server customer")
        .into_iter()
        .map(|(_, frame)| frame)
        .collect();
    let rest = blocks_marked("json rest customer");
    assert!(!rest.is_empty(), "PROTOCOL.md has a REST history example");
    for (line, detail) in rest {
        let events = detail["events"].as_array().expect("`events`");
        assert!(events.len() >= 5, "PROTOCOL.md:{line}: too few events");
        for event in events {
            assert!(
                on_socket.contains(event),
                "PROTOCOL.md:{line}: {event} is not a `json server customer` example"
            );
        }
        let record = &detail["session"];
        assert!(
            record["id"].is_string(),
            "PROTOCOL.md:{line}: ids are strings"
        );
        assert!(
            record["times"]["created"].is_i64(),
            "PROTOCOL.md:{line}: times are ms"
        );
        for hidden in ["agent", "group", "summary"] {
            assert!(
                record.get(hidden).is_none(),
                "PROTOCOL.md:{line}: customers see no `{hidden}`"
            );
        }
    }
}

/// Every `format: date-time` in `value`, by the path that leads to it.
fn date_time_paths(value: &Value, path: String, found: &mut Vec<String>) {
    match value {
        Value::Object(object) => {
            if object.get("format") == Some(&json!("date-time")) {
                found.push(path.clone());
            }
            for (key, inner) in object {
                date_time_paths(inner, format!("{path}/{key}"), found);
            }
        }
        Value::Array(items) => {
            for (idx, inner) in items.iter().enumerate() {
                date_time_paths(inner, format!("{path}/{idx}"), found);
            }
        }
        _ => {}
    }
}

/// §2 in the OpenAPI document: REST session events are the socket's event
/// frames, and the API sends no time but as integer milliseconds.
#[test]
fn the_openapi_document_gives_events_and_times_as_section_2_does() {
    let (_, openapi) = gateway::rest::api_router().split_for_parts();
    let openapi = serde_json::to_value(openapi).unwrap();
    let schemas = &openapi["components"]["schemas"];
    for detail in ["SessionDetail", "SessionDiagnostics"] {
        assert_eq!(
            schemas[detail]["properties"]["events"]["items"]["$ref"],
            "#/components/schemas/EventFrame",
            "{detail}: {}",
            schemas[detail]
        );
    }
    assert_eq!(
        (&schemas["Time"]["type"], &schemas["Time"]["format"]),
        (&json!("integer"), &json!("int64")),
        "{}",
        schemas["Time"]
    );
    let event = format!("{}{}", schemas["EventFrame"], schemas["EventBody"]);
    for part in [
        r##""at":{"$ref":"#/components/schemas/Time""##,
        "agent:chen.jie",
        "offer_withdrawn",
    ] {
        assert!(event.contains(part), "{part} in {event}");
    }
    // Every schema a `$ref` names is in the document.
    let text = openapi.to_string();
    for reference in text.split(r##""$ref":"#/components/schemas/"##).skip(1) {
        let name = reference.split('"').next().unwrap();
        assert!(
            schemas.get(name).is_some(),
            "`{name}` is referred to but not defined"
        );
    }
    let mut found = Vec::new();
    date_time_paths(&openapi, String::new(), &mut found);
    assert!(
        found.iter().all(|path| path.contains("InboundMessage")
            || path.contains("WebhookChannelMessage")
            || path.contains("inbound")),
        "only times channels send (the envelope's `timestamp`, the webhook channel's `sent_at`) are RFC 3339: {found:?}"
    );
}

#[test]
fn the_inbound_table_gives_the_statuses_of_the_openapi_document() {
    let (_, openapi) = gateway::rest::api_router().split_for_parts();
    let openapi = serde_json::to_value(openapi).unwrap();
    let responses = openapi["paths"]["/api/v1/inbound"]["post"]["responses"]
        .as_object()
        .expect("POST /api/v1/inbound in the OpenAPI document");
    let in_openapi: BTreeSet<String> = responses
        .keys()
        .filter(|status| *status != "200")
        .cloned()
        .collect();
    let rows = table_rows("inbound-codes");
    let documented: BTreeSet<String> = rows
        .iter()
        .map(|row| row.split('|').nth(1).unwrap().trim().to_string())
        .collect();
    assert_eq!(
        documented, in_openapi,
        "PROTOCOL.md §10 and the OpenAPI document"
    );
    for row in rows {
        for code in backticked(row.split('|').nth(2).unwrap()) {
            let quoted = format!("\"{code}\"");
            let produced = SOURCES.iter().any(|(_, text)| text.contains(&quoted))
                || [
                    include_str!("../../src/extract.rs"),
                    include_str!("../../src/middleware.rs"),
                ]
                .iter()
                .any(|text| text.contains(&quoted));
            assert!(
                produced,
                "PROTOCOL.md §10 lists `{code}`, which no source produces"
            );
        }
    }
}
