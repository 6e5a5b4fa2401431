//! PROTOCOL.md stays true to the code: every client example is accepted by a
//! live server's parser, every malformed example gets the error it documents,
//! every server example is a JSON object with a `type`, the error codes in
//! the doc's tables are exactly the ones the code produces, and the limits
//! table gives the configuration's defaults.
//!
//! The doc marks its examples by the info string of their code blocks (see
//! the table at the top of PROTOCOL.md): `json client customer`,
//! `json server agent`, `json http`, `text malformed customer <code>` and
//! `transcript` (lines `customer -> {…}` / `agent <- {…}`).

mod common;

use std::collections::BTreeSet;

use common::{Client, TestServer};
use gateway::Config;
use gateway::auth::Role;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const PROTOCOL: &str = include_str!("../../PROTOCOL.md");

/// Where error codes come from, as (path, text): the forward check looks
/// each documented code up in all of them.
const SOURCES: [(&str, &str); 12] = [
    ("gateway/src/error.rs", include_str!("../src/error.rs")),
    ("gateway/src/access.rs", include_str!("../src/access.rs")),
    (
        "gateway/src/listener.rs",
        include_str!("../src/listener.rs"),
    ),
    (
        "gateway/src/rest/mod.rs",
        include_str!("../src/rest/mod.rs"),
    ),
    (
        "gateway/src/ws/frames.rs",
        include_str!("../src/ws/frames.rs"),
    ),
    ("gateway/src/ws/link.rs", include_str!("../src/ws/link.rs")),
    (
        "gateway/src/ws/customer.rs",
        include_str!("../src/ws/customer.rs"),
    ),
    (
        "gateway/src/ws/agent.rs",
        include_str!("../src/ws/agent.rs"),
    ),
    (
        "gateway/src/ws/replies.rs",
        include_str!("../src/ws/replies.rs"),
    ),
    ("gateway/src/ws/rate.rs", include_str!("../src/ws/rate.rs")),
    (
        "actors/src/error.rs",
        include_str!("../../actors/src/error.rs"),
    ),
    ("gateway/src/auth.rs", include_str!("../src/auth.rs")),
];

/// The WebSocket modules, whose frame-level codes the error table must list.
const WS_SOURCES: [&str; 6] = [
    include_str!("../src/ws/frames.rs"),
    include_str!("../src/ws/link.rs"),
    include_str!("../src/ws/customer.rs"),
    include_str!("../src/ws/agent.rs"),
    include_str!("../src/ws/replies.rs"),
    include_str!("../src/ws/rate.rs"),
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
    let access = source("gateway/src/access.rs");
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

    // What `history` may answer through the access checks is in one table or the other.
    for code in http_error_codes(access) {
        assert!(
            frame_table.contains(&code) || upgrade_table.contains(&code),
            "PROTOCOL.md does not document `{code}` (gateway/src/access.rs)"
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
