//! The data platform end to end on a real server with the demo data:
//! tickets synced live to the customer's socket (with the latency of a
//! status change), the 360° view pushed with an offer and its access rules,
//! reply suggestions, knowledge search and the summary written at close.
//!
//! `cargo test -p gateway --release --test platform -- --nocapture` prints
//! the status-change latencies recorded in BENCHMARKS.md.

mod common;

use std::time::{Duration, Instant};

use common::{Client, TestServer, accept_offer, session_of};
use gateway::auth::Role;
use serde_json::{Value, json};

/// Status changes timed end to end.
const N_CHANGES: usize = 50;

struct Api<'a> {
    server: &'a TestServer,
    http: reqwest::Client,
}

impl Api<'_> {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        who: (&str, Role),
        body: Option<Value>,
    ) -> (u16, Value) {
        let token = self.server.token(who.0, who.1);
        let mut request = self
            .http
            .request(method, self.server.http_url(path))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
    async fn get(&self, path: &str, who: (&str, Role)) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, who, None).await
    }
}

const CHEN: (&str, Role) = ("chen.jie", Role::Agent);
const LI: (&str, Role) = ("li.na", Role::Agent);
const WANG: (&str, Role) = ("wang.min", Role::Supervisor);
const EMMA: (&str, Role) = ("cust-003", Role::Customer);
const ZHAO: (&str, Role) = ("cust-002", Role::Customer);
const ADMIN: (&str, Role) = ("ops", Role::Admin);

/// cust-003 writes on the web; chen.jie (the only available agent) accepts.
async fn assigned(server: &TestServer) -> (Client, Client, String) {
    let mut agent = server.available_agent("chen.jie").await;
    let mut customer = server.customer("cust-003").await;
    customer.hello(json!({})).await;
    let ack = customer
        .say(
            json!({}),
            "m-1",
            "My order is late, the tracking number shows nothing",
        )
        .await;
    let session = session_of(&ack);
    accept_offer(&mut agent, &session).await;
    (customer, agent, session)
}

fn percentile(sorted: &[Duration], pct: usize) -> Duration {
    sorted[(sorted.len() * pct / 100).min(sorted.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticket_changes_reach_the_customer_at_once() {
    let server = TestServer::start(|_| {}).await;
    let api = Api {
        server: &server,
        http: reqwest::Client::new(),
    };
    let (mut customer, mut agent, session) = assigned(&server).await;

    let (status, ticket) = api
        .call(
            reqwest::Method::POST,
            "/api/v1/tickets",
            CHEN,
            Some(
                json!({"session_id": session, "subject": "Parcel not moving", "priority": "high"}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{ticket}");
    let id = ticket["id"].as_str().unwrap().to_string();
    assert_eq!(ticket["customer_id"], "cust-003");
    assert_eq!(ticket["sessions"], json!([session]));
    let created = customer
        .wait_for("the new ticket", |f| {
            f["type"] == "ticket" && f["ticket"]["id"] == id.as_str()
        })
        .await;
    assert_eq!(created["events"][0]["change"]["kind"], "created");

    // The agent watches it: a customer's comment reaches the desktop.
    let watched = agent
        .request(json!({"type": "watch_ticket", "ticket_id": id}))
        .await;
    assert_eq!(watched["type"], "ticket", "{watched}");
    assert_eq!(watched["events"].as_array().unwrap().len(), 1);
    let (status, _) = api
        .call(
            reqwest::Method::PATCH,
            &format!("/api/v1/tickets/{id}"),
            EMMA,
            Some(json!({"comment": "Any news?"})),
        )
        .await;
    assert_eq!(status, 200);
    let comment = agent
        .wait_for("the comment", |f| {
            f["type"] == "ticket" && f["events"][0]["change"]["kind"] == "comment"
        })
        .await;
    assert_eq!(comment["events"][0]["author"], "customer");

    // Status changes by the agent, each timed until the customer's socket has it.
    let mut latencies = Vec::with_capacity(N_CHANGES);
    for idx in 0..N_CHANGES {
        let status = if idx % 2 == 0 { "pending" } else { "open" };
        let started = Instant::now();
        let (code, body) = api
            .call(
                reqwest::Method::PATCH,
                &format!("/api/v1/tickets/{id}"),
                CHEN,
                Some(json!({"status": status})),
            )
            .await;
        assert_eq!(code, 200, "{body}");
        let pushed = customer
            .wait_for("the status change", |f| {
                f["type"] == "ticket" && f["events"][0]["change"]["to"] == status
            })
            .await;
        latencies.push(started.elapsed());
        assert_eq!(pushed["ticket"]["status"], status);
    }
    let (code, solved) = api
        .call(
            reqwest::Method::PATCH,
            &format!("/api/v1/tickets/{id}"),
            CHEN,
            Some(json!({"status": "solved"})),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(solved["ticket"]["status"], "solved");
    customer
        .wait_for("solved", |f| {
            f["type"] == "ticket" && f["ticket"]["status"] == "solved"
        })
        .await;
    latencies.sort();
    println!(
        "ticket status change -> customer socket, {N_CHANGES} changes (REST PATCH to the ticket frame): p50 {:?}, p90 {:?}, max {:?}",
        percentile(&latencies, 50),
        percentile(&latencies, 90),
        latencies[latencies.len() - 1]
    );

    // The history holds every change, in order.
    let (_, detail) = api.get(&format!("/api/v1/tickets/{id}"), EMMA).await;
    let seqs: Vec<u64> = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=(N_CHANGES as u64 + 3)).collect::<Vec<_>>());
    // A customer may reopen a solved ticket, not set its priority.
    let (code, err) = api
        .call(
            reqwest::Method::PATCH,
            &format!("/api/v1/tickets/{id}"),
            EMMA,
            Some(json!({"priority": "urgent"})),
        )
        .await;
    assert_eq!(
        (code, err["details"]["field"].as_str()),
        (400, Some("priority")),
        "{err}"
    );
    server.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customers_own_view_leaves_out_what_is_for_staff() {
    let server = TestServer::start(|_| {}).await;
    let api = Api {
        server: &server,
        http: reqwest::Client::new(),
    };
    let (_customer, _agent, session) = assigned(&server).await;
    let note = "refund promised; customer upset";
    server
        .server
        .switchboard()
        .close(
            &engine::ids::AgentId::new("chen.jie"),
            engine::ids::SessionId(session.parse().unwrap()),
            Some(note.into()),
        )
        .await
        .unwrap();
    let path = "/api/v1/customers/cust-003/view";
    let has_note = |view: &Value| {
        view["interactions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|row| row["summary"] == note)
    };
    // Staff see the agent's wrap-up note and the last agent ...
    let (code, staff) = api.get(path, ADMIN).await;
    assert_eq!(code, 200);
    assert!(has_note(&staff), "{staff}");
    assert_eq!(staff["customer"]["last_agent"], "chen.jie", "{staff}");
    // ... the customer sees the same conversations without them
    // (PROTOCOL.md §2, "What customers see").
    let (code, own) = api.get(path, EMMA).await;
    assert_eq!(code, 200);
    assert_eq!(
        own["interactions"].as_array().unwrap().len(),
        staff["interactions"].as_array().unwrap().len(),
        "{own}"
    );
    assert!(!has_note(&own), "{own}");
    assert!(
        own["interactions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|row| row.get("summary").is_none()),
        "{own}"
    );
    assert!(own["customer"].get("last_agent").is_none(), "{own}");
    assert!(own.get("last_summary").is_none(), "{own}");
    server.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_360_view_is_pushed_with_the_offer_and_guarded() {
    let server = TestServer::start(|_| {}).await;
    let api = Api {
        server: &server,
        http: reqwest::Client::new(),
    };
    let (_customer, mut agent, session) = assigned(&server).await;

    let pushed = agent
        .wait_for("the 360° view", |f| f["type"] == "customer_view")
        .await;
    assert_eq!(pushed["session"], session.as_str());
    let view = &pushed["view"];
    assert_eq!(view["customer"]["id"], "cust-003");
    assert_eq!(
        view["customer"]["identities"].as_array().unwrap().len(),
        2,
        "{view}"
    );
    // The demo's tickets for Emma Lee are in it.
    assert!(view["tickets"].as_array().unwrap().len() >= 2, "{view}");

    // Who may read it.
    let path = "/api/v1/customers/cust-003/view";
    assert_eq!(api.get(path, CHEN).await.0, 200);
    assert_eq!(api.get(path, EMMA).await.0, 200);
    assert_eq!(api.get(path, ADMIN).await.0, 200);
    assert_eq!(
        api.get(path, WANG).await.0,
        200,
        "supervisor of the session's group"
    );
    let (code, err) = api.get(path, LI).await;
    assert_eq!(
        (code, err["code"].as_str()),
        (403, Some("not_your_customer"))
    );
    let (code, err) = api.get(path, ZHAO).await;
    assert_eq!(
        (code, err["code"].as_str()),
        (404, Some("unknown_customer"))
    );
    // Tickets follow the same rules.
    let ticket = view["tickets"][0]["id"].as_str().unwrap();
    assert_eq!(
        api.get(&format!("/api/v1/tickets/{ticket}"), EMMA).await.0,
        200
    );
    let (code, err) = api.get(&format!("/api/v1/tickets/{ticket}"), ZHAO).await;
    assert_eq!((code, err["code"].as_str()), (404, Some("unknown_ticket")));
    let (code, _) = api.get("/api/v1/tickets?customer=cust-003", ZHAO).await;
    assert_eq!(code, 404);
    let (code, err) = api.get(&format!("/api/v1/tickets/{ticket}"), LI).await;
    assert_eq!((code, err["code"].as_str()), (403, Some("not_your_ticket")));
    let (code, mine) = api.get("/api/v1/tickets", EMMA).await;
    assert_eq!(code, 200);
    assert!(
        mine.as_array()
            .unwrap()
            .iter()
            .all(|t| t["customer_id"] == "cust-003")
    );

    // The 360° reads are served from the cache after the first, and /metrics says so.
    let metrics = reqwest::get(format!("http://{}/metrics", server.server.admin_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let hits = metrics
        .lines()
        .find(|line| line.starts_with("switchboard_customer_cache_total{result=\"hit\"}"))
        .unwrap_or_else(|| panic!("no cache hits in /metrics:\n{metrics}"));
    assert!(!hits.ends_with(" 0"), "{hits}");
    let stats = server.server.state.platform.cache.stats();
    let hits_before = stats.hits.load(std::sync::atomic::Ordering::Relaxed);
    api.get(path, CHEN).await;
    assert!(stats.hits.load(std::sync::atomic::Ordering::Relaxed) >= hits_before + 2);
    server.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suggestions_search_and_the_summary_at_close() {
    let server = TestServer::start(|_| {}).await;
    let api = Api {
        server: &server,
        http: reqwest::Client::new(),
    };
    let (mut customer, mut agent, session) = assigned(&server).await;

    // The brief's example: an agent typing "订单延迟".
    let (code, suggested) = api
        .get(
            &format!(
                "/api/v1/sessions/{session}/suggestions?text=%E8%AE%A2%E5%8D%95%E5%BB%B6%E8%BF%9F"
            ),
            CHEN,
        )
        .await;
    assert_eq!(code, 200, "{suggested}");
    assert_eq!(
        suggested["suggestions"][0]["text"],
        "您的订单因物流原因延迟,预计3天内送达,我们已为您优先处理。"
    );
    // Without text, the customer's last message is matched.
    let (_, from_customer) = api
        .get(&format!("/api/v1/sessions/{session}/suggestions"), CHEN)
        .await;
    assert_eq!(
        from_customer["matched_against"],
        "My order is late, the tracking number shows nothing"
    );
    assert_eq!(
        api.get(&format!("/api/v1/sessions/{session}/suggestions"), LI)
            .await
            .0,
        403
    );

    // Chinese search over REST, unspaced.
    let (code, hits) = api
        .get(
            "/api/v1/kb/search?q=%E8%AE%A2%E5%8D%95%E5%BB%B6%E8%BF%9F&limit=3",
            EMMA,
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(hits[0]["id"], "kb-zh-order-delay", "{hits}");
    assert!(
        hits[0]["snippet"].as_str().unwrap().contains("<b>"),
        "{hits}"
    );

    // Close: the summary is written and the 360° view shows it.
    customer
        .say(
            json!({}),
            "m-2",
            "The parcel tracking has not updated for five days.",
        )
        .await;
    agent
        .say(
            json!({"session": session}),
            "a-1",
            "The courier delayed it; it ships again tomorrow.",
        )
        .await;
    customer
        .say(json!({}), "m-3", "Thanks, that solved it!")
        .await;
    let closed = agent
        .request(json!({"type": "close", "session": session, "summary": "courier delay"}))
        .await;
    assert_eq!(closed["type"], "ok", "{closed}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let summary = loop {
        let (_, view) = api.get("/api/v1/customers/cust-003/view", ADMIN).await;
        if view["last_summary"].is_object() {
            break view;
        }
        assert!(Instant::now() < deadline, "no summary after 10 s: {view}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let last = &summary["last_summary"];
    assert_eq!(last["session_id"], session.as_str());
    assert_eq!(last["outcome"], "resolved");
    assert!(
        last["topics"]
            .as_array()
            .unwrap()
            .contains(&json!("delivery")),
        "{last}"
    );
    assert!(
        last["key_sentences"][0]
            .as_str()
            .unwrap()
            .contains("tracking"),
        "{last}"
    );
    // The closed conversation is on the cross-channel timeline.
    assert_eq!(summary["interactions"][0]["session_id"], session.as_str());
    server.server.shutdown().await.unwrap();
}

/// A `customer_view` notice for `session` whose customer id is `marker`.
fn marked_view(session: &str, marker: &str) -> actors::Notice {
    actors::Notice::CustomerView {
        session: engine::ids::SessionId(session.parse().unwrap()),
        view: Box::new(actors::platform::CustomerView {
            for_staff: true,
            customer: engine::customer::Customer::new(marker, marker),
            interactions: Vec::new(),
            sessions: Vec::new(),
            tickets: Vec::new(),
            last_summary: None,
        }),
    }
}

/// A 360° view is built off the socket's loop after an offer, so it can be
/// ready only after the agent has handed the session on: the agent's
/// sockets drop a view for a session that left the agent since its offer,
/// and still pass views of sessions the agent holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_360_view_that_arrives_after_a_transfer_is_not_shown() {
    let server = TestServer::start(|_| {}).await;
    let (_customer, mut agent, session) = assigned(&server).await;
    // A second conversation the agent keeps (taken before the transfer, so
    // the agent is not in wrap-up).
    let visitor = server.visitor_token().await;
    let mut other_customer = Client::connect(&server.ws_url("/ws/customer", &visitor)).await;
    other_customer.hello(json!({})).await;
    let held = session_of(&other_customer.say(json!({}), "m-2", "hello").await);
    accept_offer(&mut agent, &held).await;
    for _ in 0..2 {
        agent
            .wait_for("the offers' 360° views", |f| f["type"] == "customer_view")
            .await;
    }

    let transferred = agent
        .request(json!({"type": "transfer", "session": session, "group": "phone_support"}))
        .await;
    assert_eq!(transferred["type"], "ok", "{transferred}");
    agent
        .wait_for("the transfer", |f| f["type"] == "transferred")
        .await;
    // A view for the first offer, finished only now.
    let late_view = marked_view(&session, "late");
    let audience = actors::Audience::Agent(engine::ids::AgentId::new("chen.jie"));
    server.server.state.platform.notify(&audience, &late_view);
    // The socket handles pushes before the client's next frame: had it sent
    // the view, it would come before this pong.
    let pong = agent.request(json!({"type": "ping"})).await;
    assert_eq!(pong["type"], "pong");
    let shown: Vec<Value> = agent
        .take_pending()
        .into_iter()
        .filter(|frame| frame["type"] == "customer_view")
        .collect();
    assert!(shown.is_empty(), "a stale view was shown: {shown:?}");

    // A view of the session the agent holds still goes through.
    let fresh_view = marked_view(&held, "fresh");
    server.server.state.platform.notify(&audience, &fresh_view);
    let shown = agent
        .wait_for("the held session's view", |f| {
            f["type"] == "customer_view" && f["view"]["customer"]["id"] == "fresh"
        })
        .await;
    assert_eq!(shown["session"], held.as_str());
    server.server.shutdown().await.unwrap();
}
