//! Supervisor control: reassign and re-prioritise waiting sessions, force an
//! agent's presence; who may, the errors, the session history and the
//! audit log.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use engine::agent::{Agent, Role as AgentRole};
use engine::channel::Channel;
use engine::ids::{AgentId, GroupId, SessionId};
use engine::presence::PresenceRequest;
use engine::session::SessionState;
use gateway::auth::Role;
use serde_json::{Value, json};

use crate::rest::support::{TestServer, code, two_sessions};

/// A supervisor of `gold_service` only (the demo's wang.min supervises every group).
pub(crate) async fn add_gold_supervisor(server: &TestServer) -> String {
    let profile = Agent {
        id: AgentId::new("zhou.li"),
        display_name: "Zhou Li".into(),
        role: AgentRole::Supervisor,
        skills: Default::default(),
        groups: vec![GroupId::new("gold_service")],
        languages: vec!["zh-CN".into()],
        capacity: Default::default(),
        sip: None,
    };
    server
        .server
        .switchboard()
        .write(vec![store::WriteOp::PutAgent(profile)])
        .await
        .unwrap();
    server.token("zhou.li", Role::Supervisor)
}

/// The `type`s of a session's history as `token` sees it.
async fn history(server: &TestServer, session: SessionId, token: &str) -> Vec<Value> {
    let (status, body) = server
        .get(&format!("/api/v1/sessions/{session}"), token)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["events"].as_array().unwrap().clone()
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

async fn audit(server: &TestServer) -> Vec<Value> {
    let admin = server.token("ops", Role::Admin);
    let (status, body) = server.get("/api/v1/audit", &admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["entries"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_supervisor_moves_a_waiting_session_to_another_group_with_a_reason_on_record() {
    let server = TestServer::start().await;
    let sessions = two_sessions(&server).await;
    let supervisor = server.token("wang.min", Role::Supervisor);
    let path = format!("/api/v1/sessions/{}/reassign", sessions.queued);

    let (status, body) = server
        .post(
            &path,
            Some(&supervisor),
            json!({"group": "default", "reason": "  phone queue is backed up  "}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let seq = body["seq"].as_u64().unwrap();
    let record = server
        .stored_in(sessions.queued, SessionState::Queued)
        .await;
    assert_eq!(record.group, Some(GroupId::new("default")));
    assert_eq!(
        record.sla_group,
        Some(GroupId::new("default")),
        "moved before an answer: it counts in the group it moved to"
    );

    let staff = history(&server, sessions.queued, &supervisor).await;
    let steered = staff
        .iter()
        .find(|e| e["type"] == "steered")
        .expect("a steered event");
    assert_eq!(steered["seq"].as_u64(), Some(seq));
    assert_eq!(steered["change"], "reassigned");
    assert_eq!(steered["group"], "default");
    assert_eq!(steered["by"], "supervisor:wang.min");
    assert_eq!(steered["reason"], "phone queue is backed up");
    let last = staff.last().unwrap();
    assert_eq!(
        (last["type"].as_str(), last["group"].as_str()),
        (Some("queued"), Some("default"))
    );

    let customer = server.token("cust-002", Role::Customer);
    let seen = history(&server, sessions.queued, &customer).await;
    assert!(!types(&seen).contains(&"steered"), "{:?}", types(&seen));

    let entries = audit(&server).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = &entries[0];
    assert_eq!(entry["action"], "reassign");
    assert_eq!(entry["session"], sessions.queued.to_string());
    assert_eq!(entry["from_group"], "phone_support");
    assert_eq!(entry["to_group"], "default");
    assert_eq!(entry["by"], "supervisor:wang.min");
    assert_eq!(entry["reason"], "phone queue is backed up");
}

#[tokio::test]
async fn a_session_reassigned_to_one_agent_is_offered_to_them_only() {
    let server = TestServer::start().await;
    let sessions = two_sessions(&server).await;
    let switchboard = server.server.switchboard();
    // liu.yang is in phone_support and default: without a group, the
    // session stays in its own group, for them only.
    let liu_yang = AgentId::new("liu.yang");
    let mut offers = switchboard.subscribe_agent(&liu_yang);
    let supervisor = server.token("wang.min", Role::Supervisor);
    let (status, body) = server
        .post(
            &format!("/api/v1/sessions/{}/reassign", sessions.queued),
            Some(&supervisor),
            json!({"agent": "liu.yang", "reason": "speaks Cantonese"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // zhang.wei, also in phone_support, is ready first: not offered it.
    let zhang_wei = AgentId::new("zhang.wei");
    let mut passed_over = switchboard.subscribe_agent(&zhang_wei);
    switchboard
        .set_presence(&zhang_wei, PresenceRequest::Available)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    switchboard
        .set_presence(&liu_yang, PresenceRequest::Available)
        .await
        .unwrap();
    let offer = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let event = offers.recv().await.expect("subscription open");
            if let actors::EventKind::Offered { agent, .. } = &event.kind {
                return (event.session, agent.clone());
            }
        }
    })
    .await
    .expect("an offer within 10 s");
    assert_eq!(offer, (sessions.queued, liu_yang));
    while let Ok(event) = passed_over.try_recv() {
        assert!(
            !matches!(event.kind, actors::EventKind::Offered { .. }),
            "{event:?}"
        );
    }
    let record = switchboard.session(sessions.queued).await.unwrap();
    assert_eq!(record.group, Some(GroupId::new("phone_support")));
    let entries = audit(&server).await;
    assert_eq!(entries[0]["to_agent"], "liu.yang");
    assert_eq!(entries[0]["to_group"], "phone_support");
}

#[tokio::test]
async fn a_raised_priority_is_served_first_and_keeps_its_place_otherwise() {
    let server = TestServer::start().await;
    let switchboard = server.server.switchboard();
    let first = server
        .message(Channel::Phone, "+8613900000002", "first")
        .await;
    let second = server
        .message(Channel::Phone, "+8613900000099", "second")
        .await;
    server.stored_in(first, SessionState::Queued).await;
    server.stored_in(second, SessionState::Queued).await;
    let record = switchboard.session(second).await.unwrap();
    let group = record.group.clone().unwrap();
    let admin = server.token("ops", Role::Admin);
    let (status, body) = server
        .post(
            &format!("/api/v1/sessions/{second}/priority"),
            Some(&admin),
            json!({"priority": 50, "reason": "complaint escalated"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let view = switchboard.group_view(&group).await.unwrap();
    let order: Vec<(SessionId, i32)> = view.waiting.iter().map(|w| (w.0, w.1)).collect();
    assert_eq!(order.first(), Some(&(second, 50)), "{order:?}");

    let staff = history(&server, second, &admin).await;
    let steered = staff.iter().find(|e| e["type"] == "steered").unwrap();
    assert_eq!(steered["change"], "reprioritised");
    assert_eq!(steered["to"], 50);
    assert_eq!(steered["by"], "admin:ops");
    let entries = audit(&server).await;
    assert_eq!(entries[0]["action"], "reprioritise");
    assert_eq!(entries[0]["priority"], 50);
}

#[tokio::test]
async fn a_supervisor_forces_an_agent_away_and_the_agent_is_told_why() {
    let server = TestServer::start().await;
    let switchboard = server.server.switchboard();
    let chen_jie = AgentId::new("chen.jie");
    switchboard
        .set_presence(&chen_jie, PresenceRequest::Available)
        .await
        .unwrap();
    let mut notices = server
        .server
        .state
        .platform
        .subscribe(actors::Audience::Agent(chen_jie.clone()));
    let supervisor = server.token("wang.min", Role::Supervisor);
    let body = json!({"presence": "away", "reason": "stuck: not answering offers"}).to_string();
    let (status, body) = server
        .send(
            Method::PUT,
            "/api/v1/agents/chen.jie/presence",
            Some(&supervisor),
            Some(("application/json", body)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["presence"]["state"], "away");
    assert_eq!(body["audit"]["action"], "set_presence");
    let view = switchboard.agent_view(&chen_jie).await.unwrap();
    assert_eq!(view.presence.as_str(), "away");
    let notice = tokio::time::timeout(Duration::from_secs(5), notices.recv())
        .await
        .expect("a notice")
        .unwrap();
    let frame = gateway::wire::platform::notice_frame(&notice);
    assert_eq!(frame["type"], "presence_forced");
    assert_eq!(frame["by"], "supervisor:wang.min");
    assert_eq!(frame["reason"], "stuck: not answering offers");
    assert_eq!(frame["presence"]["state"], "away");
    let entries = audit(&server).await;
    assert_eq!(entries[0]["agent"], "chen.jie");
    assert_eq!(entries[0]["presence"], "away");
}

#[tokio::test]
async fn control_is_for_supervisors_of_the_groups_concerned_and_errors_say_what_is_wrong() {
    let server = TestServer::start().await;
    let sessions = two_sessions(&server).await;
    let only_gold = add_gold_supervisor(&server).await;
    let supervisor = server.token("wang.min", Role::Supervisor);
    let agent = server.token("li.na", Role::Agent);
    let customer = server.token("cust-002", Role::Customer);
    let reassign = format!("/api/v1/sessions/{}/reassign", sessions.queued);
    let priority = format!("/api/v1/sessions/{}/priority", sessions.queued);
    let move_to_default = json!({"group": "default", "reason": "r"});
    let presence = |body: Value| Some(("application/json", body.to_string()));
    let away = json!({"presence": "away", "reason": "r"});

    // Agents and customers may not; a supervisor of other groups may not.
    for token in [&agent, &customer] {
        let (status, body) = server
            .post(&reassign, Some(token), move_to_default.clone())
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    }
    let (status, body) = server
        .post(&reassign, Some(&only_gold), move_to_default.clone())
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("phone_support"),
        "{body}"
    );
    let (status, _) = server
        .post(
            &priority,
            Some(&only_gold),
            json!({"priority": 1, "reason": "r"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // zhang.wei is in phone_support and default.
    let (status, _) = server
        .send(
            Method::PUT,
            "/api/v1/agents/zhang.wei/presence",
            Some(&only_gold),
            presence(away.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = server
        .send(
            Method::PUT,
            "/api/v1/agents/zhang.wei/presence",
            Some(&agent),
            presence(away.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Bad requests, with the field named.
    let (status, body) = server
        .post(
            &reassign,
            Some(&supervisor),
            json!({"group": "default", "reason": " "}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("reason"),
        "{body}"
    );
    let (status, body) = server
        .post(&reassign, Some(&supervisor), json!({"reason": "r"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = server
        .post(
            &reassign,
            Some(&supervisor),
            json!({"group": "no_such", "reason": "r"}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "not a group anyone supervises: {body}"
    );
    let admin = server.token("ops", Role::Admin);
    let (status, body) = server
        .post(
            &reassign,
            Some(&admin),
            json!({"group": "no_such", "reason": "r"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = server
        .post(
            &reassign,
            Some(&supervisor),
            json!({"group": "gold_service", "agent": "zhang.wei", "reason": "r"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["details"]["field"], "agent", "{body}");
    let (status, body) = server
        .send(
            Method::PUT,
            "/api/v1/agents/chen.jie/presence",
            Some(&supervisor),
            presence(json!({"presence": "dancing", "reason": "r"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // An answered session cannot be moved; an agent holding one cannot be logged out.
    let (status, body) = server
        .post(
            &format!("/api/v1/sessions/{}/reassign", sessions.assigned),
            Some(&supervisor),
            move_to_default,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(code(&body), "invalid_state");
    let (status, body) = server
        .send(
            Method::PUT,
            "/api/v1/agents/li.na/presence",
            Some(&supervisor),
            presence(json!({"presence": "offline", "reason": "end of shift"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // Nothing of it reached the audit log; only admins read it.
    assert!(audit(&server).await.is_empty());
    let (status, _) = server.get("/api/v1/audit", &supervisor).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = server.get("/api/v1/audit?limit=0", &admin).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}
