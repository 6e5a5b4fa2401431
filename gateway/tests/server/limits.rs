//! Limits: the connection cap, a slow reader's backlog, new sessions per customer.

use crate::common;

use std::collections::BTreeSet;

use common::{Client, TestServer, accept_offer, process_token, session_of, start_process};
use gateway::auth::Role;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_cap_new_connections_get_503_and_the_others_keep_working() {
    let test = TestServer::start(|config| config.limits.max_connections = 6).await;
    let gauge = test.server.state.gauge.clone();
    let mut sockets = Vec::new();
    for _ in 0..3 {
        let mut client = test.customer("cust-003").await;
        client.hello(json!({})).await;
        sockets.push(client);
    }
    // Idle TCP connections count too: they hold a descriptor each.
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(TcpStream::connect(test.server.addr).await.unwrap());
    }
    wait_until(|| gauge.open() == 6).await;

    for attempt in 0..5 {
        let answer = ask(test.server.addr, "/api/v1/me").await;
        assert!(
            answer.starts_with("HTTP/1.1 503"),
            "attempt {attempt}: {answer}"
        );
        assert!(answer.contains("too_many_connections"), "{answer}");
    }
    // Health checks are answered at the cap: alive, and not ready for more.
    let health = ask(test.server.addr, "/healthz").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.ends_with("\r\n\r\nok"), "{health}");
    let ready = ask(test.server.addr, "/readyz").await;
    assert!(ready.starts_with("HTTP/1.1 503"), "{ready}");
    assert!(ready.ends_with("at the connection cap"), "{ready}");
    // The admin listener, not full, answers probes too.
    let health = ask(test.server.admin_addr, "/healthz").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let ready = ask(test.server.admin_addr, "/readyz").await;
    assert!(ready.starts_with("HTTP/1.1 503"), "{ready}");
    assert!(ready.ends_with("at the connection cap"), "{ready}");
    assert_eq!(gauge.refused(), 7);
    // A WebSocket client sees the refusal as an HTTP error.
    let url = test.ws_url("/ws/customer", &test.token("cust-003", Role::Customer));
    match tokio_tungstenite::connect_async(&url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503)
        }
        other => panic!("expected a 503, got {other:?}"),
    }

    // The open ones still work.
    for client in &mut sockets {
        let pong = client.request(json!({"type": "ping"})).await;
        assert_eq!(pong["type"], "pong");
    }
    // Freeing one makes room for one.
    drop(idle.pop());
    wait_until(|| gauge.open() == 5).await;
    let mut fresh = Client::connect(&url).await;
    assert_eq!(fresh.request(json!({"type": "ping"})).await["type"], "pong");
    test.server.shutdown().await.unwrap();
}

/// One request on a new connection; the whole answer, read until the server closes.
async fn ask(addr: std::net::SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}

/// Connections that never send a request, send it a byte at a time
/// (slowloris), or idle after a response are closed after
/// `limits.http_header_timeout_ms`, so they cannot lock clients out at the
/// cap; an upgraded WebSocket is not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_header_connections_are_closed_and_give_back_their_place() {
    let test = TestServer::start(|config| {
        config.limits.max_connections = 5;
        // Long enough for the set-up below on a slow machine: the cap must
        // be full before the first of them is closed.
        config.limits.http_header_timeout_ms = 3_000;
    })
    .await;
    let gauge = test.server.state.gauge.clone();
    let mut socket = test.customer("cust-003").await;
    socket.hello(json!({})).await;
    let mut kept_alive = TcpStream::connect(test.server.addr).await.unwrap();
    kept_alive
        .write_all(b"GET /readyz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_status(&mut kept_alive).await, 200);
    let mut slow = TcpStream::connect(test.server.addr).await.unwrap();
    slow.write_all(b"GET /readyz HTTP/1.1\r\n").await.unwrap();
    let trickle = tokio::spawn(async move {
        // One header byte every 100 ms: the head is never whole.
        let mut n_sent = 0;
        while slow.write_all(b"x").await.is_ok() && n_sent < 200 {
            n_sent += 1;
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let mut rest = Vec::new();
        // The server closes it: a 408 at most, then end of stream.
        let _ = slow.read_to_end(&mut rest).await;
        n_sent
    });
    let mut silent = Vec::new();
    for _ in 0..2 {
        silent.push(TcpStream::connect(test.server.addr).await.unwrap());
    }
    // The admin listener closes a silent connection too.
    silent.push(TcpStream::connect(test.server.admin_addr).await.unwrap());
    wait_until(|| gauge.open() == 5).await;
    assert!(
        ask(test.server.addr, "/api/v1/me")
            .await
            .starts_with("HTTP/1.1 503")
    );

    // The server closes every one of them.
    for (index, mut stream) in silent.into_iter().chain([kept_alive]).enumerate() {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(common::PATIENCE, stream.read_to_end(&mut rest)).await;
        assert!(
            read.is_ok(),
            "connection {index} still open after {:?}",
            common::PATIENCE
        );
    }
    let n_sent = tokio::time::timeout(common::PATIENCE, trickle)
        .await
        .expect("the slow connection is closed")
        .unwrap();
    assert!(n_sent < 200, "the slow connection was served to the end");
    wait_until(|| gauge.open() == 1).await;
    let answer = ask(test.server.addr, "/readyz").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // The WebSocket, idle far longer than the header timeout, still works.
    let pong = socket.request(json!({"type": "ping"})).await;
    assert_eq!(pong["type"], "pong");
    test.server.shutdown().await.unwrap();
}

/// With `limits.max_connections_per_address`, one source address cannot
/// take every place; other addresses still get in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holds_at_most_max_connections_per_address() {
    let test = TestServer::start(|config| config.limits.max_connections_per_address = 2).await;
    let addr = test.server.addr;
    let from = move |source: &'static str| async move {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
        let mut stream = socket.connect(addr).await.unwrap();
        stream
            .write_all(b"GET /readyz HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut head = vec![0u8; 12];
        stream.read_exact(&mut head).await.unwrap();
        (stream, String::from_utf8(head).unwrap())
    };
    let (_first, status) = from("127.0.0.1").await;
    assert_eq!(status, "HTTP/1.1 200");
    let (_second, status) = from("127.0.0.1").await;
    assert_eq!(status, "HTTP/1.1 200");
    let (mut third, status) = from("127.0.0.1").await;
    assert_eq!(status, "HTTP/1.1 503");
    let mut rest = String::new();
    third.read_to_string(&mut rest).await.unwrap();
    assert!(
        rest.ends_with("this address is at limits.max_connections_per_address"),
        "{rest}"
    );
    let answer = ask(addr, "/api/v1/me").await;
    assert!(
        answer.contains("too_many_connections_from_address"),
        "{answer}"
    );
    let (_other, status) = from("127.0.0.2").await;
    assert_eq!(status, "HTTP/1.1 200");
    test.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_is_closed_with_4008_and_resumes_without_loss() {
    let test = TestServer::start(|config| {
        config.limits.outbound_backlog = 8;
        config.limits.messages_per_second = 10_000;
        config.limits.message_burst = 10_000;
        config.limits.max_body_chars = 20_000;
        config.limits.max_frame_bytes = 256 * 1024;
        config.limits.max_ws_message_bytes = 1024 * 1024;
    })
    .await;
    let mut agent = test.available_agent("chen.jie").await;
    let mut customer = test.customer("cust-003").await;
    customer.hello(json!({})).await;
    let ack = customer
        .say(json!({}), "c-1", "please send me the manual")
        .await;
    let session = session_of(&ack);
    accept_offer(&mut agent, &session).await;
    customer.expect("assigned").await;
    let resume_from = customer.last_seq.clone();

    // A reader with a tiny receive buffer that stops reading.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(test.server.addr).await.unwrap();
    let url = test.ws_url("/ws/customer", &test.token("cust-003", Role::Customer));
    let (ws, _) =
        tokio_tungstenite::client_async(url, tokio_tungstenite::MaybeTlsStream::Plain(stream))
            .await
            .unwrap();
    let mut slow = Client::from_stream(ws);
    slow.resume(&resume_from).await;
    drop(customer);

    // The agent sends far more than the socket buffers and the backlog hold.
    let page = "手册".repeat(5_000);
    let n_messages = 300;
    let mut sent_seqs = BTreeSet::new();
    for index in 0..n_messages {
        let ack = agent
            .say(json!({"session": session}), &format!("page-{index}"), &page)
            .await;
        sent_seqs.insert(ack["seq"].as_u64().unwrap());
    }

    // The slow reader gets what was already queued, then 4008.
    assert_eq!(slow.closed().await, Some(4008));
    let mut received: BTreeSet<u64> = slow
        .take_pending()
        .iter()
        .filter(|frame| frame["type"] == "message" && frame["sender"] == "agent:chen.jie")
        .map(|frame| frame["seq"].as_u64().unwrap())
        .collect();
    assert!(
        received.len() < n_messages,
        "the reader was closed before the end"
    );
    let last_seen = slow.last_seq.clone();

    // It resumes from its last seq and gets the rest, each exactly once.
    let mut resumed = test.customer("cust-003").await;
    resumed.resume(&last_seen).await;
    let expected_last = *sent_seqs.iter().max().unwrap();
    loop {
        let frame = resumed
            .wait_for("replayed pages", |f| f["type"] == "message")
            .await;
        let seq = frame["seq"].as_u64().unwrap();
        assert!(received.insert(seq), "seq {seq} delivered twice");
        if seq == expected_last {
            break;
        }
    }
    assert!(sent_seqs.is_subset(&received), "every page arrived");
    test.server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_sessions_per_customer_are_limited() {
    let test =
        TestServer::start(|config| config.limits.new_sessions_per_customer_per_hour = 2).await;
    let mut customer = test.customer("cust-003").await;
    customer.hello(json!({})).await;
    for round in 0..2 {
        let ack = customer
            .say(json!({}), &format!("open-{round}"), "hello")
            .await;
        let left = customer
            .request(json!({"type": "leave", "session": session_of(&ack)}))
            .await;
        assert_eq!(left["type"], "ok", "{left}");
    }
    let refused = customer
        .request(json!({"type": "message", "client_message_id": "open-3", "body": "hello again"}))
        .await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["code"], "too_many_sessions");
    assert_eq!(refused["client_message_id"], "open-3");
    // Another customer is not affected.
    let mut other = test.customer("cust-002").await;
    other.hello(json!({})).await;
    other.say(json!({}), "x-1", "hello").await;
    test.server.shutdown().await.unwrap();
}

async fn wait_until(condition: impl Fn() -> bool) {
    for _ in 0..1_000 {
        if condition() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("condition not reached within 10 s");
}

/// The default cap follows the process's open-file limit: a `switchboard`
/// started under `ulimit -n 400` with 100 descriptors reserved takes 300
/// connections, answers the rest with 503, and keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_cap_sits_below_the_open_file_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut process = start_process(
        dir.path(),
        &[
            ("SWITCHBOARD_LIMITS_RESERVED_FDS", "100"),
            // The held connections idle between requests for longer than the default.
            ("SWITCHBOARD_LIMITS_HTTP_HEADER_TIMEOUT_MS", "120000"),
        ],
        Some(400),
    )
    .await;
    let addr = process.addr.clone();

    let mut held = Vec::new();
    let mut n_refused = 0;
    for _ in 0..350 {
        let (stream, status) = new_connection(&addr).await;
        match status {
            401 => held.push(stream),
            503 => n_refused += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((held.len(), n_refused), (300, 50));
    // Those held open are still served (keep-alive) ...
    for stream in held.iter_mut().step_by(50) {
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(read_status(stream).await, 200);
    }
    // ... and closing some makes room again, once the server has seen them go.
    held.truncate(290);
    let mut admitted = false;
    for _ in 0..100 {
        if new_connection(&addr).await.1 == 401 {
            admitted = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(admitted, "no room within 10 s of closing 10");
    let token = process_token(dir.path(), "cust-003", Role::Customer);
    let mut customer = Client::connect(&format!("ws://{addr}/ws/customer?token={token}")).await;
    customer.hello(json!({})).await;
    customer.say(json!({}), "cap-1", "room again").await;
    process.child.start_kill().unwrap();
}

/// A new connection asking `/api/v1/me` without a token (401 when
/// admitted, 503 at the cap), and the status it got.
async fn new_connection(addr: &str) -> (TcpStream, u16) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /api/v1/me HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let status = read_status(&mut stream).await;
    (stream, status)
}

/// Reads one whole HTTP/1.1 response (headers and a `content-length` body)
/// and returns its status, leaving the connection ready for the next one.
async fn read_status(stream: &mut TcpStream) -> u16 {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(stream.read_u8().await.unwrap());
    }
    let head = String::from_utf8(head).unwrap();
    let length: usize = head
        .lines()
        .find_map(|line| {
            line.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|n| n.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.unwrap();
    head[9..12].parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_socket_is_closed_and_a_listening_one_is_kept() {
    let test = TestServer::start(|config| {
        config.limits.ping_interval_ms = 200;
        config.limits.idle_timeout_ms = 1_000;
    })
    .await;
    let gauge = test.server.state.gauge.clone();
    let url = test.ws_url("/ws/customer", &test.token("cust-003", Role::Customer));
    // Connected, then never read again: it answers no ping (a vanished phone).
    let (silent, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let connected = std::time::Instant::now();
    let mut listening = test.customer("cust-002").await;
    listening.hello(json!({})).await;
    wait_until(|| gauge.open() == 2).await;

    // The listening client only reads, sending nothing of its own: its
    // library answers the server's pings, and that alone keeps it. The
    // silent one is closed after the idle timeout plus the 1 s it is given
    // to answer the close.
    while gauge.open() == 2 {
        assert!(
            connected.elapsed() < std::time::Duration::from_secs(15),
            "the silent socket is still open after 15 s"
        );
        listen(&mut listening, std::time::Duration::from_millis(100)).await;
    }
    assert!(
        connected.elapsed() >= std::time::Duration::from_millis(1_000),
        "closed before the idle timeout"
    );
    // The listening one is kept past two more idle timeouts, then answers.
    listen(&mut listening, std::time::Duration::from_millis(2_500)).await;
    assert_eq!(gauge.open(), 1, "the listening socket was kept");
    let pong = listening.request(json!({"type": "ping"})).await;
    assert_eq!(pong["type"], "pong");
    drop(silent);
    test.server.shutdown().await.unwrap();
}

/// Reads (and so answers pings) for `how_long` without sending anything;
/// a close from the server fails the test.
async fn listen(client: &mut Client, how_long: std::time::Duration) {
    let never = client.wait_for("nothing (only reading)", |_| false);
    assert!(tokio::time::timeout(how_long, never).await.is_err());
}
