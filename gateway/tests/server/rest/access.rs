//! Who may read what: refusals with their status and code, and what each
//! role lists and reads of sessions.

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use engine::ids::{AgentId, CustomerId};
use gateway::auth::{Claims, Role, TokenSigner, unix_now};
use serde_json::json;

use crate::rest::support::{TestServer, code, session_ids, two_sessions};

/// A request that must be refused: (what, method, path, token, status, code).
/// `POST`s carry a valid body and `PUT`s valid rules, so only who asks is wrong.
type RefusalCase<'a> = (&'a str, Method, &'a str, Option<&'a str>, u16, &'a str);

#[tokio::test]
async fn requests_that_must_fail_fail_with_the_right_status_and_code() {
    let server = TestServer::start().await;
    let sessions = two_sessions(&server).await;
    let assigned = format!("/api/v1/sessions/{}", sessions.assigned);
    let queued = format!("/api/v1/sessions/{}", sessions.queued);
    let signer = &server.server.state.signer;
    let admin_claims = |exp| Claims {
        sub: "admin".into(),
        role: Role::Admin,
        exp,
    };
    let expired = signer.mint(&admin_claims(unix_now() - 1));
    let forged = TokenSigner::new(*b"not-the-server-secret-0123456789")
        .mint(&admin_claims(unix_now() + 3600));
    let vip = server.token("cust-vip-001", Role::Customer);
    let emma = server.token("cust-003", Role::Customer);
    let li_na = server.token("li.na", Role::Agent);
    let chen_jie = server.token("chen.jie", Role::Agent);
    let zhang_wei = server.token("zhang.wei", Role::Agent);
    let wang_min = server.token("wang.min", Role::Supervisor);
    let ghost = server.token("nobody", Role::Agent);
    let fake_supervisor = server.token("li.na", Role::Supervisor);
    let admin = server.token("admin", Role::Admin);
    let (get, post, put) = (Method::GET, Method::POST, Method::PUT);
    let link = "/api/v1/customers/cust-vip-001/identities";
    #[rustfmt::skip]
    let cases: Vec<RefusalCase> = vec![
        ("no token", get.clone(), "/api/v1/me", None, 401, "unauthorized"),
        ("expired token", get.clone(), "/api/v1/me", Some(&expired), 401, "unauthorized"),
        ("forged signature", get.clone(), "/api/v1/agents", Some(&forged), 401, "unauthorized"),
        ("malformed token", get.clone(), "/api/v1/me", Some("v1.garbage"), 401, "unauthorized"),
        ("token for no agent", get.clone(), "/api/v1/agents", Some(&ghost), 401, "unauthorized"),
        ("not a supervisor", get.clone(), "/api/v1/me", Some(&fake_supervisor), 401, "unauthorized"),
        ("customer, another's session", get.clone(), &assigned, Some(&emma), 404, "unknown_session"),
        ("customer, no such session", get.clone(), "/api/v1/sessions/42", Some(&emma), 404, "unknown_session"),
        ("customer, another customer", get.clone(), "/api/v1/customers/cust-vip-001", Some(&emma), 404, "unknown_customer"),
        ("agent, customer not theirs", get.clone(), "/api/v1/customers/cust-002", Some(&li_na), 403, "not_your_customer"),
        ("agent, another agent's customer", get.clone(), "/api/v1/customers/cust-vip-001", Some(&chen_jie), 403, "not_your_customer"),
        ("agent links to a customer not theirs", post.clone(), link, Some(&chen_jie), 403, "not_your_customer"),
        ("customer, another's list", get.clone(), "/api/v1/sessions?customer=cust-vip-001", Some(&emma), 403, "forbidden"),
        ("agent, session not theirs", get.clone(), &assigned, Some(&chen_jie), 403, "not_your_session"),
        ("agent, queued session", get.clone(), &queued, Some(&zhang_wei), 403, "not_your_session"),
        ("agent, other group's session", get.clone(), &queued, Some(&li_na), 403, "not_your_session"),
        ("session id not a number", get.clone(), "/api/v1/sessions/abc", Some(&li_na), 400, "invalid"),
        ("agent puts rules", put.clone(), "/api/v1/rules", Some(&li_na), 403, "forbidden"),
        ("supervisor puts rules", put.clone(), "/api/v1/rules", Some(&wang_min), 403, "forbidden"),
        ("customer puts rules", put.clone(), "/api/v1/rules", Some(&vip), 403, "forbidden"),
        ("supervisor reads rules", get.clone(), "/api/v1/rules", Some(&wang_min), 403, "forbidden"),
        ("customer lists agents", get.clone(), "/api/v1/agents", Some(&vip), 403, "forbidden"),
        ("customer reads an agent", get.clone(), "/api/v1/agents/li.na", Some(&vip), 403, "forbidden"),
        ("agent reads another", get.clone(), "/api/v1/agents/li.na", Some(&chen_jie), 403, "forbidden"),
        ("no such agent", get.clone(), "/api/v1/agents/nobody", Some(&admin), 404, "unknown_agent"),
        ("customer lists groups", get.clone(), "/api/v1/groups", Some(&vip), 403, "forbidden"),
        ("agent, group not theirs", get.clone(), "/api/v1/groups/gold_service", Some(&chen_jie), 403, "forbidden"),
        ("customer reads a queue", get.clone(), "/api/v1/groups/default", Some(&vip), 403, "forbidden"),
        ("customer creates a customer", post.clone(), "/api/v1/customers", Some(&vip), 403, "forbidden"),
        ("customer links an identity", post.clone(), link, Some(&vip), 403, "forbidden"),
    ];
    let rules =
        "[[rule]]\nname = \"all\"\nfilter = \"true\"\n  [[rule.step]]\n  group = \"default\"\n";
    for (what, method, path, token, status, expected_code) in cases {
        #[rustfmt::skip]
        let body = match (&method, path.ends_with("/identities")) {
            (&Method::PUT, _) => Some(("text/plain", rules.to_string())),
            (&Method::POST, true) => Some(("application/json", r#"{"channel":"qq","external_id":"1"}"#.into())),
            (&Method::POST, false) => Some(("application/json", r#"{"id":"cust-new","display_name":"New"}"#.into())),
            _ => None,
        };
        let (got, response) = server.send(method, path, token, body).await;
        assert_eq!(
            (got.as_u16(), code(&response)),
            (status, expected_code),
            "{what}: {response}"
        );
    }
    // Profiles are read under the 360° view's rule: the agent serving the
    // customer, the supervisor of the group the customer waits in.
    for (token, customer) in [(&li_na, "cust-vip-001"), (&wang_min, "cust-002")] {
        let (status, record) = server
            .get(&format!("/api/v1/customers/{customer}"), token)
            .await;
        assert_eq!(
            (status, record["id"].as_str()),
            (StatusCode::OK, Some(customer)),
            "{record}"
        );
    }
    // The refused PUTs changed nothing.
    let (_, text) = server.get("/api/v1/rules", &admin).await;
    assert_eq!(text.as_str().unwrap(), gateway::server::DEFAULT_RULES);
    server.shutdown().await;
}

#[tokio::test]
async fn sessions_are_listed_and_read_by_who_may_see_them() {
    let server = TestServer::start().await;
    // The demo's past conversations (the VIP's, closed) are left out of
    // what is compared below.
    let seeded: BTreeSet<String> = server
        .server
        .switchboard()
        .store()
        .sessions_of_customer(&engine::ids::CustomerId::new("cust-vip-001"), 100)
        .await
        .unwrap()
        .iter()
        .map(|session| session.id.to_string())
        .collect();
    assert_eq!(
        seeded.len(),
        2,
        "the demo's past WeChat and web conversations"
    );
    let new_ids = |body: &serde_json::Value| -> BTreeSet<String> {
        session_ids(body).difference(&seeded).cloned().collect()
    };
    let sessions = two_sessions(&server).await;
    let (assigned, queued) = (sessions.assigned.to_string(), sessions.queued.to_string());
    let both: BTreeSet<String> = [assigned.clone(), queued.clone()].into();
    let only = |id: &String| BTreeSet::from([id.clone()]);
    let cases = [
        ("cust-vip-001", Role::Customer, "", only(&assigned)),
        ("cust-002", Role::Customer, "", only(&queued)),
        ("cust-003", Role::Customer, "", BTreeSet::new()),
        ("li.na", Role::Agent, "", only(&assigned)),
        ("zhang.wei", Role::Agent, "", BTreeSet::new()),
        ("wang.min", Role::Supervisor, "", both.clone()),
        ("admin", Role::Admin, "", both.clone()),
        ("admin", Role::Admin, "?customer=cust-002", only(&queued)),
        ("li.na", Role::Agent, "?customer=cust-002", BTreeSet::new()),
        (
            "li.na",
            Role::Agent,
            "?customer=cust-vip-001",
            only(&assigned),
        ),
        (
            "cust-vip-001",
            Role::Customer,
            "?customer=cust-vip-001",
            only(&assigned),
        ),
    ];
    for (sub, role, query, expected) in cases {
        let token = server.token(sub, role);
        let (status, body) = server
            .get(&format!("/api/v1/sessions{query}"), &token)
            .await;
        assert_eq!(status, StatusCode::OK, "{sub}{query}: {body}");
        assert_eq!(new_ids(&body), expected, "{sub}{query}");
        assert_eq!(body["truncated"], false);
    }
    let admin = server.token("admin", Role::Admin);
    let (_, page) = server.get("/api/v1/sessions?limit=1", &admin).await;
    assert_eq!(
        (session_ids(&page), &page["truncated"]),
        (only(&queued), &json!(true)),
        "newest first"
    );
    for (query, field) in [
        ("?limit=0", "limit"),
        ("?limit=1001", "limit"),
        ("?limit=many", "limit"),
    ] {
        let (status, body) = server
            .get(&format!("/api/v1/sessions{query}"), &admin)
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_REQUEST, "invalid"),
            "{query}"
        );
        assert!(body["message"].as_str().unwrap().contains(field), "{body}");
    }

    // The record and its history, in seq order; customers see no offers.
    let path = format!("/api/v1/sessions/{assigned}");
    for (sub, role, sees_offers) in [
        ("cust-vip-001", Role::Customer, false),
        ("li.na", Role::Agent, true),
        ("wang.min", Role::Supervisor, true),
        ("admin", Role::Admin, true),
    ] {
        let (status, body) = server.get(&path, &server.token(sub, role)).await;
        assert_eq!(status, StatusCode::OK, "{sub}: {body}");
        let session = &body["session"];
        assert_eq!(session["id"], assigned.as_str(), "ids are strings");
        // Customers see no routing: no group, no agent id (PROTOCOL.md §2).
        let staff = role != Role::Customer;
        assert_eq!(
            (session["state"].as_str(), session["agent"].as_str()),
            (Some("assigned"), staff.then_some("li.na")),
            "{sub}"
        );
        assert_eq!(
            (session["group"].as_str(), session["channel"].as_str()),
            (staff.then_some("gold_service"), Some("web")),
            "{sub}"
        );
        assert!(
            session["times"]["answered"].as_i64().unwrap() > 1_700_000_000_000,
            "times are ms since the Unix epoch: {session}"
        );
        let events = body["events"].as_array().unwrap();
        let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
        assert!(seqs.windows(2).all(|pair| pair[0] < pair[1]), "{seqs:?}");
        let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(kinds.contains(&"offer"), sees_offers, "{sub}: {kinds:?}");
        let messages: Vec<(&str, &str)> = events
            .iter()
            .filter(|e| e["type"] == "message")
            .map(|e| (e["sender"].as_str().unwrap(), e["body"].as_str().unwrap()))
            .collect();
        assert_eq!(
            messages,
            [
                ("customer", "where is my order"),
                ("agent:li.na", "on its way")
            ],
            "{sub}"
        );
        assert!(
            kinds.contains(&"assigned") && kinds.contains(&"queued"),
            "{kinds:?}"
        );
        assert!(body.get("queue").is_none(), "assigned: not in a queue");
    }

    // A waiting session says where it stands.
    let cust_002 = server.token("cust-002", Role::Customer);
    let (status, body) = server
        .get(&format!("/api/v1/sessions/{queued}"), &cust_002)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The customer is told their place, not how they were routed.
    assert_eq!(body["queue"]["position"], 1, "{body}");
    assert!(body["queue"].get("group").is_none(), "{body}");
    let admin = server.token("admin", Role::Admin);
    let (status, body) = server
        .get(&format!("/api/v1/sessions/{queued}"), &admin)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (&body["queue"]["group"], &body["queue"]["position"]),
        (&json!("phone_support"), &json!(1)),
        "{body}"
    );

    // Wrapped up and rated: the score is on the record and in the history.
    let switchboard = server.server.switchboard();
    let li_na = AgentId::new("li.na");
    switchboard
        .wrap_up(&li_na, sessions.assigned, Some("shipped".into()))
        .await
        .unwrap();
    switchboard
        .rate(
            &CustomerId::new("cust-vip-001"),
            sessions.assigned,
            5,
            Some("quick".into()),
        )
        .await
        .unwrap();
    let vip = server.token("cust-vip-001", Role::Customer);
    let (_, body) = server.get(&path, &vip).await;
    assert_eq!(
        (&body["session"]["state"], &body["session"]["rating"]),
        (&json!("wrap_up"), &json!(5)),
        "{body}"
    );
    let last = body["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        last,
        json!({"type": "rated", "session": assigned.as_str(), "seq": last["seq"], "at": last["at"], "score": 5, "comment": "quick"})
    );
    server.shutdown().await;
}
