//! Historical reports over REST: who sees which groups, the errors, JSON
//! and CSV, over real contacts in a real SQLite store. The figures of a
//! scripted day are checked in the actors' tests (tests/reports.rs).

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use gateway::auth::Role;
use http_body_util::BodyExt as _;
use serde_json::Value;
use tower::ServiceExt as _;

use crate::rest::support::{TestServer, code, two_sessions};

/// The window of this test's contacts, leaving out the demo's history.
fn window(from: i64) -> String {
    format!("from={from}&to={}", from + 10 * 60_000)
}

fn rows(body: &Value) -> Vec<Value> {
    body["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("no rows in {body}"))
        .clone()
}

/// `(group, channel, offered, answered, open)` of the rows with contacts.
fn busy(body: &Value) -> Vec<(String, String, u64, u64, u64)> {
    rows(body)
        .iter()
        .filter(|row| row["offered"].as_u64() > Some(0))
        .map(|row| {
            (
                row["group"].as_str().unwrap().to_owned(),
                row["channel"].as_str().unwrap_or("all").to_owned(),
                row["offered"].as_u64().unwrap(),
                row["answered"].as_u64().unwrap(),
                row["open"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn supervisors_read_reports_of_their_groups_as_json_or_csv() {
    let server = TestServer::start().await;
    let from = engine::now_millis() - 60_000;
    two_sessions(&server).await;
    let admin = server.token("ops", Role::Admin);
    let gold_only = crate::rest::supervise::add_gold_supervisor(&server).await;
    let intervals = format!("/api/v1/reports/intervals?{}&interval=15", window(from));

    // An admin sees every group: the web chat answered in gold_service,
    // the call still waiting in phone_support.
    let (status, body) = server.get(&intervals, &admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["window"]["interval_minutes"], 15);
    assert_eq!(
        busy(&body),
        [
            ("gold_service".into(), "all".into(), 1, 1, 0),
            ("gold_service".into(), "web".into(), 1, 1, 0),
            ("phone_support".into(), "all".into(), 1, 0, 1),
            ("phone_support".into(), "phone".into(), 1, 0, 1),
        ]
    );
    // A supervisor of gold_service sees only it, and may not ask for another.
    let (status, body) = server.get(&intervals, &gold_only).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        rows(&body).iter().all(|row| row["group"] == "gold_service"),
        "{body}"
    );
    assert_eq!(busy(&body).len(), 2);
    let (status, body) = server
        .get(&format!("{intervals}&group=phone_support"), &gold_only)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // Agents and customers may not read reports.
    for token in [
        server.token("li.na", Role::Agent),
        server.token("cust-002", Role::Customer),
    ] {
        let (status, body) = server.get(&intervals, &token).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    }

    // Agents: li.na answered one and replied; only gold_service's members
    // for its supervisor.
    let agents = format!("/api/v1/reports/agents?{}", window(from));
    let (status, body) = server.get(&agents, &admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let li_na = rows(&body)
        .into_iter()
        .find(|row| row["agent"] == "li.na")
        .unwrap();
    assert_eq!(li_na["answered"], 1);
    assert!(li_na["on_contact_ms"].as_i64().unwrap() > 0, "{li_na}");
    assert!(
        li_na["first_response_mean_ms"].as_f64().is_some(),
        "{li_na}"
    );
    let (_, body) = server.get(&agents, &gold_only).await;
    let names: Vec<String> = rows(&body)
        .iter()
        .map(|row| row["agent"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        names.contains(&"li.na".to_owned()) && !names.contains(&"zhang.wei".to_owned()),
        "{names:?}"
    );

    // Narrowed to default, where li.na also works, her gold_service chat
    // is not counted.
    let (_, body) = server.get(&format!("{agents}&group=default"), &admin).await;
    let li_na = rows(&body)
        .into_iter()
        .find(|row| row["agent"] == "li.na")
        .unwrap();
    assert_eq!(li_na["answered"], 0, "{li_na}");

    // Usage: the gold_service chat, answered in li.na's layout; only her
    // groups' contacts for a supervisor of one of them.
    let usage = format!("/api/v1/reports/usage?{}", window(from));
    let answered = |body: &Value| -> u64 {
        rows(body)
            .iter()
            .map(|row| row["answered"].as_u64().unwrap())
            .sum()
    };
    let (status, body) = server.get(&usage, &gold_only).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(answered(&body), 1, "{body}");
    let (_, body) = server.get(&format!("{usage}&group=default"), &admin).await;
    assert_eq!(answered(&body), 0, "{body}");

    // Routes: each contact under the rule that routed it; a supervisor
    // sees the steps of their groups.
    let (_, body) = server
        .get(
            &format!("/api/v1/reports/routes?{}", window(from)),
            &gold_only,
        )
        .await;
    assert!(
        rows(&body).iter().all(|row| row["group"] == "gold_service"),
        "{body}"
    );
    let (status, body) = server
        .get(&format!("/api/v1/reports/routes?{}", window(from)), &admin)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let entered: u64 = rows(&body)
        .iter()
        .map(|row| row["entered"].as_u64().unwrap())
        .sum();
    assert!(entered >= 2, "{body}");
    assert_eq!(body["without_route"], 0);

    // CSV: a download with the same figures.
    let request = Request::get(format!("{intervals}&format=csv"))
        .header(header::AUTHORIZATION, format!("Bearer {admin}"))
        .body(Body::empty())
        .unwrap();
    let response = gateway::router(server.server.state.clone())
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/csv; charset=utf-8"
    );
    let disposition = response.headers()[header::CONTENT_DISPOSITION]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        disposition.starts_with("attachment; filename=\"intervals-"),
        "{disposition}"
    );
    let csv = String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(
        csv.starts_with("interval_start,interval_end,group,channel,offered,"),
        "{csv}"
    );
    assert!(
        csv.lines()
            .any(|line| line.contains(",phone_support,phone,1,0,0,0,0,,")),
        "{csv}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_bad_window_interval_or_format_names_the_parameter() {
    let server = TestServer::start().await;
    let admin = server.token("ops", Role::Admin);
    let now = engine::now_millis();
    for (path, field) in [
        (
            "/api/v1/reports/intervals?interval=20".to_owned(),
            "interval",
        ),
        (
            format!("/api/v1/reports/intervals?from={now}&to={}", now - 1),
            "to",
        ),
        (
            format!(
                "/api/v1/reports/intervals?from=0&to={}",
                40 * 86_400_000_i64
            ),
            "to",
        ),
        (
            format!("/api/v1/reports/intervals?from=-5&to={now}"),
            "from",
        ),
        ("/api/v1/reports/agents?format=xml".to_owned(), "format"),
        ("/api/v1/reports/routes?interval=15".to_owned(), "interval"),
        ("/api/v1/reports/agents?from=yesterday".to_owned(), "from"),
    ] {
        let (status, body) = server.get(&path, &admin).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(code(&body), "invalid", "{path}: {body}");
        assert_eq!(body["details"]["field"], field, "{path}: {body}");
    }
    server.shutdown().await;
}
