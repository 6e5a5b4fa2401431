//! End to end over real sockets: customers and agents on the WebSocket
//! protocol, routed by the brief's rules over the demo data.

use crate::common;

use chrono::Utc;
use common::{TestServer, session_of};
use engine::channel::Channel;
use engine::envelope::Envelope;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_conversation_is_routed_offered_accepted_and_closed() {
    let test = TestServer::start(|_| {}).await;
    let mut agent = test.available_agent("chen.jie").await;
    let mut customer = test.customer("cust-003").await;
    let welcome = customer.hello(json!({})).await;
    assert_eq!(welcome["customer"]["id"], "cust-003");
    assert_eq!(welcome["sessions"], json!([]));

    let ack = customer.say(json!({}), "c-1", "Where is my order?").await;
    let session = session_of(&ack);
    assert_eq!(ack["duplicate"], false);
    let queued = customer.expect("queued").await;
    assert_eq!(session_of(&queued), session);

    let offer = agent.expect("offer").await;
    assert_eq!(session_of(&offer), session);
    assert_eq!(offer["group"], "default");
    assert_eq!(offer["channel"], "web");
    assert_eq!(offer["customer"]["display_name"], "Emma Lee");
    assert!(offer["deadline"].as_i64().unwrap() > offer["at"].as_i64().unwrap());
    let accepted = agent
        .request(json!({"type": "accept", "session": session}))
        .await;
    assert_eq!(accepted["type"], "ok", "{accepted}");

    let assigned = customer.expect("assigned").await;
    assert_eq!(assigned["agent_name"], "Chen Jie");
    assert!(
        assigned.get("agent").is_none(),
        "customers do not see agent ids"
    );

    // The agent sees the customer's first message, then they talk.
    let first = agent
        .wait_for("the customer's message", |f| {
            f["type"] == "message" && f["sender"] == "customer"
        })
        .await;
    assert_eq!(first["body"], "Where is my order?");
    let reply = agent
        .say(json!({"session": session}), "a-1", "It ships today.")
        .await;
    assert!(reply["seq"].as_u64().unwrap() > ack["seq"].as_u64().unwrap());
    let seen = customer
        .wait_for("the agent's reply", |f| {
            f["type"] == "message" && f["sender"] == "agent:chen.jie"
        })
        .await;
    assert_eq!(seen["body"], "It ships today.");
    assert_eq!(seen["seq"], reply["seq"]);

    // Typing reaches the other side without a seq of its own.
    customer
        .send(json!({"type": "typing", "session": session}))
        .await;
    let typing = agent.expect("typing").await;
    assert_eq!(typing["sender"], "customer");

    let ack2 = customer.say(json!({}), "c-2", "Thanks!").await;
    assert_eq!(session_of(&ack2), session);
    let second = agent
        .wait_for("second message", |f| {
            f["type"] == "message" && f["body"] == "Thanks!"
        })
        .await;
    assert_eq!(second["seq"], ack2["seq"]);

    let wrap = agent
        .request(json!({"type": "wrap_up", "session": session, "summary": "order shipped"}))
        .await;
    assert_eq!(wrap["type"], "ok", "{wrap}");
    customer.expect("wrap_up").await;
    let closed = agent
        .request(json!({"type": "close", "session": session, "summary": "order shipped"}))
        .await;
    assert_eq!(closed["type"], "ok", "{closed}");
    customer.expect("closed").await;

    // The customer rates the conversation; the agent sees the rating.
    let rated = customer
        .request(json!({"type": "rate", "session": session, "score": 5, "comment": "fast"}))
        .await;
    assert_eq!(rated["type"], "ok", "{rated}");
    let rating = agent.expect("rated").await;
    assert_eq!(rating["score"], 5);

    let record = test
        .server
        .switchboard()
        .session(engine::ids::SessionId(session.parse().unwrap()))
        .await
        .unwrap();
    assert_eq!(record.state.as_str(), "closed");
    test.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vip_lands_in_gold_service_and_a_phone_contact_in_phone_support() {
    let test = TestServer::start(|_| {}).await;
    // li.na is the only gold_service agent besides the supervisor; zhang.wei handles phones.
    let mut gold = test.available_agent("li.na").await;
    let mut phone = test.available_agent("zhang.wei").await;

    let mut vip = test.customer("cust-vip-001").await;
    vip.hello(json!({})).await;
    let ack = vip.say(json!({}), "v-1", "我的订单何时发货?").await;
    let offer = gold.expect("offer").await;
    assert_eq!(session_of(&offer), session_of(&ack));
    assert_eq!(offer["group"], "gold_service");
    assert_eq!(offer["customer"]["tier"], "vip");

    // The phone channel arrives through its adapter; here, the envelope directly.
    let call = Envelope {
        channel: Channel::Phone,
        customer_id: "+8613900000002".into(),
        message: "incoming call".into(),
        timestamp: Utc::now(),
        client_message_id: Some("call-1".into()),
        display_name: None,
    };
    let call_ack = test
        .server
        .switchboard()
        .customer_message(call)
        .await
        .unwrap();
    let offer = phone.expect("offer").await;
    assert_eq!(session_of(&offer), call_ack.session.0.to_string());
    assert_eq!(offer["group"], "phone_support");
    assert_eq!(offer["channel"], "phone");
    assert_eq!(offer["customer"]["id"], "cust-002");
    test.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_that_times_out_goes_to_the_next_agent() {
    let test = TestServer::start(|config| config.routing.offer_timeout_ms = 2_000).await;
    let mut first = test.available_agent("chen.jie").await;
    let mut second = test.available_agent("liu.yang").await;
    let mut customer = test.customer("cust-003").await;
    customer.hello(json!({})).await;
    let ack = customer.say(json!({}), "c-1", "hello?").await;
    let session = session_of(&ack);

    // Whoever is offered first ignores it; the other gets it after the timeout.
    let (mut ignoring, mut answering, answering_id) = tokio::select! {
        offer = first.expect("offer") => { assert_eq!(session_of(&offer), session); (first, second, "liu.yang") }
        offer = second.expect("offer") => { assert_eq!(session_of(&offer), session); (second, first, "chen.jie") }
    };
    // The second offer is accepted first (it too lapses after 2 s); the
    // first one's withdrawal is read after.
    let offer = answering.expect("offer").await;
    assert_eq!(session_of(&offer), session);
    assert_eq!(
        offer["agent"], answering_id,
        "only one's own offers: {offer}"
    );
    // The offer came with the conversation so far, before it, in order, and
    // without the other agent's offer and its withdrawal.
    let earlier = answering.take_pending();
    let message = earlier
        .iter()
        .find(|f| f["type"] == "message")
        .expect("the customer's message came with the offer");
    assert_eq!(message["body"], "hello?");
    assert!(message["seq"].as_u64() < offer["seq"].as_u64());
    assert!(
        earlier
            .iter()
            .all(|f| f["type"] != "offer" && f["type"] != "offer_withdrawn"),
        "{earlier:?}"
    );
    let accepted = answering
        .request(json!({"type": "accept", "session": session}))
        .await;
    assert_eq!(accepted["type"], "ok", "{accepted}");
    customer.expect("assigned").await;
    let withdrawn = ignoring.expect("offer_withdrawn").await;
    assert_eq!(session_of(&withdrawn), session);

    // The agent who let the offer lapse is not offered more until they come back.
    let presence = ignoring.request(json!({"type": "sessions"})).await;
    assert_eq!(presence["offers"], json!([]));
    test.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_to_another_group_keeps_the_history() {
    let test = TestServer::start(|_| {}).await;
    let mut chen = test.available_agent("chen.jie").await;
    let mut customer = test.customer("cust-003").await;
    customer.hello(json!({})).await;
    let ack = customer
        .say(json!({}), "c-1", "my phone line is down")
        .await;
    let session = session_of(&ack);
    chen.expect("offer").await;
    assert_eq!(
        chen.request(json!({"type": "accept", "session": session}))
            .await["type"],
        "ok"
    );
    chen.say(
        json!({"session": session}),
        "a-1",
        "Let me transfer you to phone support.",
    )
    .await;

    let mut zhang = test.available_agent("zhang.wei").await;
    let transferred = chen
        .request(json!({"type": "transfer", "session": session, "group": "phone_support"}))
        .await;
    assert_eq!(transferred["type"], "ok", "{transferred}");
    let offer = zhang.expect("offer").await;
    assert_eq!(session_of(&offer), session);
    assert_eq!(offer["group"], "phone_support");
    assert_eq!(
        zhang
            .request(json!({"type": "accept", "session": session}))
            .await["type"],
        "ok"
    );
    let assigned = customer
        .wait_for("assigned to Zhang Wei", |f| {
            f["type"] == "assigned" && f["agent_name"] == "Zhang Wei"
        })
        .await;
    assert_eq!(session_of(&assigned), session);

    // The new agent reads the whole conversation, including the first agent's part.
    let history = zhang
        .request(json!({"type": "history", "session": session}))
        .await;
    assert_eq!(history["type"], "ok", "{history}");
    let frames = zhang.take_pending();
    let bodies: Vec<&str> = frames
        .iter()
        .filter(|f| f["type"] == "message")
        .filter_map(|f| f["body"].as_str())
        .collect();
    assert!(bodies.contains(&"my phone line is down"), "{bodies:?}");
    assert!(
        bodies.contains(&"Let me transfer you to phone support."),
        "{bodies:?}"
    );

    // And the first agent may no longer write to it.
    let refused = chen
        .request(json!({"type": "message", "session": session, "client_message_id": "a-2", "body": "still there?"}))
        .await;
    assert_eq!(refused["type"], "error");
    assert_eq!(refused["code"], "not_your_session");

    // Desktop usage (docs/reports.md): the transfer was recorded by the
    // server; the desktop reports what only it sees, and nothing else.
    let inserted = chen
        .request(json!({"type": "usage", "action": "suggestion_inserted"}))
        .await;
    assert_eq!(inserted["type"], "ok", "{inserted}");
    let panel = chen
        .request(json!({"type": "usage", "action": "panel_used", "panel": "kb"}))
        .await;
    assert_eq!(panel["type"], "ok", "{panel}");
    for (frame, words) in [
        (
            json!({"type": "usage", "action": "transfer"}),
            "`action`: `transfer` is recorded by the server",
        ),
        (
            json!({"type": "usage", "action": "typed"}),
            "`action`: unknown action `typed`",
        ),
        (
            json!({"type": "usage", "action": "panel_used"}),
            "`panel`: `panel_used` names the panel",
        ),
        (
            json!({"type": "usage", "action": "panel_used", "panel": "sidebar"}),
            "`panel`: unknown panel `sidebar`",
        ),
        (
            json!({"type": "usage", "action": "suggestion_inserted", "panel": "kb"}),
            "`panel`: only `panel_used`",
        ),
    ] {
        let refused = chen.request(frame.clone()).await;
        assert_eq!(refused["type"], "error", "{frame}: {refused}");
        assert_eq!(refused["code"], "invalid", "{frame}: {refused}");
        assert!(
            refused["message"].as_str().unwrap().contains(words),
            "{frame}: {refused}"
        );
    }
    let admin = test.token("ops", gateway::auth::Role::Admin);
    let agents = test.get_json("/api/v1/reports/agents", &admin).await;
    let chen_usage = agents["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["agent"] == "chen.jie")
        .map(|row| row["usage"].clone())
        .unwrap();
    assert_eq!(
        chen_usage,
        json!({"suggestion_inserted": 1, "transfer": 1, "panel_used:kb": 1})
    );
    let usage = test.get_json("/api/v1/reports/usage", &admin).await;
    // chen.jie is a junior in the demo: his actions count in that layout.
    let row = usage["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["layout"] == "junior")
        .unwrap_or_else(|| panic!("no junior row in {usage}"));
    assert_eq!(row["usage"]["transfer"], 1, "{usage}");
    assert_eq!(row["answered"], 0, "answered by zhang.wei now: {usage}");
    test.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness() {
    let test = TestServer::start(|_| {}).await;
    let client = reqwest::Client::new();
    let health = client.get(test.http_url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = client.get(test.http_url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert!(ready.text().await.unwrap().starts_with("ready"));
    test.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_customers_are_told_their_place_and_estimated_wait() {
    let test = TestServer::start(|_| {}).await;
    // Nobody is available: both customers wait in `default`.
    let mut first = test.customer("cust-003").await;
    first.hello(json!({})).await;
    let first_ack = first.say(json!({}), "f-1", "anyone there?").await;
    let status = first.expect("queue_status").await;
    assert_eq!(session_of(&status), session_of(&first_ack));
    assert_eq!(status["position"], 1);
    assert_eq!(status["n_waiting"], 1);
    assert!(
        status["estimated_wait_secs"].as_u64().unwrap() > 0,
        "{status}"
    );

    let mut second = test.customer("cust-002").await;
    second.hello(json!({})).await;
    let second_ack = second.say(json!({}), "s-1", "me too").await;
    let status = second.expect("queue_status").await;
    assert_eq!(status["position"], 2);
    assert_eq!(status["n_waiting"], 2);

    // The group tells the first customer when the queue changed.
    let update = first
        .wait_for("an update counting both", |f| {
            f["type"] == "queue_status" && f["n_waiting"] == 2
        })
        .await;
    assert_eq!(update["position"], 1);

    // An agent who takes one chat at a time comes; the first customer is
    // answered and the second moves up.
    let mut agent = test.available_agent("wang.min").await;
    let offer = agent.expect("offer").await;
    assert_eq!(session_of(&offer), session_of(&first_ack));
    assert_eq!(
        agent
            .request(json!({"type": "accept", "session": session_of(&offer)}))
            .await["type"],
        "ok"
    );
    first.expect("assigned").await;
    // (While the first is offered it no longer counts for place in line, but
    // still waits: a status in between may say position 1 of 2.)
    let moved = second
        .wait_for("position 1 of 1", |f| {
            f["type"] == "queue_status" && f["position"] == 1 && f["n_waiting"] == 1
        })
        .await;
    assert_eq!(session_of(&moved), session_of(&second_ack));
    test.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_who_leaves_withdraws_the_offer_and_closes_cleanly() {
    let test = TestServer::start(|_| {}).await;
    let mut agent = test.available_agent("chen.jie").await;
    let mut customer = test.customer("cust-003").await;
    customer.hello(json!({})).await;
    let ack = customer.say(json!({}), "c-1", "never mind").await;
    let session = session_of(&ack);
    agent.expect("offer").await;
    let left = customer
        .request(json!({"type": "leave", "session": session}))
        .await;
    assert_eq!(left["type"], "ok", "{left}");
    customer.expect("abandoned").await;
    let withdrawn = agent.expect("offer_withdrawn").await;
    assert_eq!(session_of(&withdrawn), session);
    let late = agent
        .request(json!({"type": "accept", "session": session}))
        .await;
    assert_eq!(late["type"], "error", "{late}");

    // A client's close is answered with its own code.
    customer
        .send_raw(tokio_tungstenite::tungstenite::Message::Close(Some(
            tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Normal,
                reason: "bye".into(),
            },
        )))
        .await;
    assert_eq!(customer.closed().await, Some(1000));
    test.server.shutdown().await.unwrap();
}

/// A supervisor follows a live chat: reads along silently, whispers to the
/// agent (the customer never sees it), barges in (the customer sees it,
/// marked as the supervisor's) and stops; agents may not monitor, and every
/// step is in the session's history and the audit log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_reads_along_whispers_to_the_agent_and_barges_in_marked() {
    let test = TestServer::start(|_| {}).await;
    let mut agent = test.available_agent("chen.jie").await;
    let mut customer = test.customer("cust-003").await;
    customer.hello(json!({})).await;
    let ack = customer.say(json!({}), "c-1", "My parcel is late").await;
    let session = session_of(&ack);
    common::accept_offer(&mut agent, &session).await;
    let supervisor_url = test.ws_url(
        "/ws/agent",
        &test.token("wang.min", gateway::auth::Role::Supervisor),
    );
    let mut supervisor = common::Client::connect(&supervisor_url).await;
    supervisor.hello(json!({})).await;
    let monitor = |mode: &str| json!({"type": "monitor", "session": session, "mode": mode});

    // An agent may not monitor, even a colleague in their own group.
    let mut other = common::Client::connect(&test.ws_url(
        "/ws/agent",
        &test.token("liu.yang", gateway::auth::Role::Agent),
    ))
    .await;
    other.hello(json!({})).await;
    let refused = other.request(monitor("listen")).await;
    assert_eq!(refused["code"], "forbidden", "{refused}");

    // Listen: the conversation so far and what follows, nothing to write.
    let ok = supervisor.request(monitor("listen")).await;
    assert_eq!(ok["type"], "ok", "{ok}");
    let history = supervisor
        .request(json!({"type": "history", "session": session}))
        .await;
    assert_eq!(history["type"], "ok", "{history}");
    customer.say(json!({}), "c-2", "Are you there?").await;
    supervisor
        .wait_for("the customer's message, live", |f| {
            f["type"] == "message" && f["body"] == "Are you there?"
        })
        .await;
    let whisper = |id: &str, body: &str| json!({"type": "whisper", "session": session, "client_message_id": id, "body": body});
    let refused = supervisor.request(whisper("s-0", "psst")).await;
    assert_eq!(refused["code"], "invalid", "{refused}");
    let refused = supervisor
        .request(json!({"type": "message", "session": session, "client_message_id": "s-00", "body": "hello"}))
        .await;
    assert_eq!(refused["code"], "invalid", "{refused}");
    assert!(
        refused["message"].as_str().unwrap().contains("listen mode"),
        "{refused}"
    );

    // Whisper: only the agent (and staff) see it.
    supervisor.request(monitor("whisper")).await;
    let whispered = supervisor
        .request(whisper("s-1", "Offer the express refund"))
        .await;
    assert_eq!(whispered["type"], "ack", "{whispered}");
    let heard = agent.expect("whisper").await;
    assert_eq!(heard["sender"], "supervisor:wang.min");
    assert_eq!(heard["body"], "Offer the express refund");

    // Barge: the customer sees it, marked as the supervisor's.
    supervisor.request(monitor("barge")).await;
    let barged = supervisor
        .say(
            json!({"session": session}),
            "s-2",
            "I am the duty manager; we will refund today.",
        )
        .await;
    assert_eq!(barged["type"], "ack", "{barged}");
    let seen = customer
        .wait_for("the supervisor's message", |f| {
            f["type"] == "message" && f["sender"] == "supervisor:wang.min"
        })
        .await;
    assert_eq!(seen["body"], "I am the duty manager; we will refund today.");
    agent
        .wait_for("the supervisor's message", |f| {
            f["type"] == "message" && f["sender"] == "supervisor:wang.min"
        })
        .await;

    // Stop: nothing more reaches the supervisor.
    supervisor.request(monitor("stop")).await;
    supervisor
        .wait_for("the stop", |f| {
            f["type"] == "monitored" && f["mode"] == "stop"
        })
        .await;
    customer.say(json!({}), "c-3", "Thank you!").await;
    agent
        .wait_for("the thanks", |f| {
            f["type"] == "message" && f["body"] == "Thank you!"
        })
        .await;
    let pong = supervisor.request(json!({"type": "ping"})).await;
    assert_eq!(pong["type"], "pong");
    assert!(
        !supervisor
            .take_pending()
            .iter()
            .any(|f| f["body"] == "Thank you!"),
        "a supervisor who stopped still got the conversation"
    );

    // The customer never saw the whisper or the monitoring; the agent was
    // not told live that someone listened.
    let pong = customer.request(json!({"type": "ping"})).await;
    assert_eq!(pong["type"], "pong");
    for frame in customer.take_pending() {
        assert!(
            frame["type"] != "whisper" && frame["type"] != "monitored",
            "{frame}"
        );
    }
    for frame in agent.take_pending() {
        assert_ne!(frame["type"], "monitored", "{frame}");
    }
    // Nor in its history, on the socket or over REST: listening is silent.
    let replayed = agent
        .request(json!({"type": "history", "session": session}))
        .await;
    assert_eq!(replayed["type"], "ok", "{replayed}");
    assert!(
        agent
            .take_pending()
            .iter()
            .all(|frame| frame["type"] != "monitored"),
        "the agent's history shows the monitoring"
    );
    let agents_view = test
        .get_json(
            &format!("/api/v1/sessions/{session}"),
            &test.token("chen.jie", gateway::auth::Role::Agent),
        )
        .await;
    assert!(
        !agents_view.to_string().contains("\"monitored\""),
        "{agents_view}"
    );
    let admin = test.token("ops", gateway::auth::Role::Admin);
    let record = test
        .get_json(&format!("/api/v1/sessions/{session}"), &admin)
        .await;
    let events = record["events"].as_array().unwrap();
    let modes: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "monitored")
        .map(|e| e["mode"].as_str().unwrap())
        .collect();
    assert_eq!(modes, ["listen", "whisper", "barge", "stop"]);
    assert!(events.iter().any(|e| e["type"] == "whisper"));
    let own = test
        .get_json(
            &format!("/api/v1/sessions/{session}"),
            &test.token("cust-003", gateway::auth::Role::Customer),
        )
        .await;
    let types: Vec<&str> = own["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(
        !types.contains(&"whisper") && !types.contains(&"monitored"),
        "{types:?}"
    );
    let audit = test.get_json("/api/v1/audit", &admin).await;
    let audited: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["mode"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(audited, ["stop", "barge", "whisper", "listen"]);
    test.server.shutdown().await.unwrap();
}
