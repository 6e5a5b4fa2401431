//! Graceful shutdown: sockets close with 1001 after the store is flushed,
//! new connections are refused, and SIGTERM does the same for the binary.

use crate::common;

use std::time::Duration;

use common::{Client, TestServer, session_of, start_process};
use engine::ids::SessionId;
use gateway::auth::{Claims, Role, TokenSigner, unix_now};
use serde_json::json;
use store::{SqliteStore, Store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_flushes_then_closes_every_socket_with_1001() {
    let test = TestServer::start(|_| {}).await;
    let addr = test.server.addr;
    let mut agent = test.available_agent("chen.jie").await;
    let mut customer = test.customer("cust-003").await;
    customer.hello(json!({})).await;
    let ack = customer.say(json!({}), "c-1", "are you closing?").await;
    let session: u64 = session_of(&ack).parse().unwrap();
    agent.expect("offer").await;

    let db = test.dir.path().join("switchboard.db");
    test.server.shutdown().await.unwrap();
    assert_eq!(customer.closed().await, Some(1001));
    assert_eq!(agent.closed().await, Some(1001));
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener is gone"
    );
    let store = SqliteStore::open(&db).unwrap();
    let messages = store.messages(SessionId(session), 0, 100).await.unwrap();
    assert!(messages.iter().any(|m| m.body == "are you closing?"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_binary_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let process = start_process(dir.path(), &[], None).await;
    let (mut child, addr, banner) = (process.child, process.addr, process.banner);
    assert!(banner.contains("/ws/customer"), "{banner}");
    let printed_token = banner
        .lines()
        .skip_while(|line| !line.contains("customer Emma Lee"))
        .nth(1)
        .expect("a token under Emma Lee")
        .trim()
        .to_string();
    let mut customer =
        Client::connect(&format!("ws://{addr}/ws/customer?token={printed_token}")).await;
    let welcome = customer.hello(json!({})).await;
    assert_eq!(welcome["customer"]["id"], "cust-003");

    // `switchboard token` mints with the same secret.
    let minted = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["token", "--role", "agent", "--sub", "li.na"])
        .env("SWITCHBOARD_STORE_DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert!(minted.status.success());
    let minted = String::from_utf8(minted.stdout).unwrap();
    let signer = TokenSigner::from_secret_or_file("", &dir.path().join("auth.secret")).unwrap();
    let claims = signer.verify(minted.trim(), unix_now()).unwrap();
    assert_eq!(
        claims,
        Claims {
            sub: "li.na".into(),
            role: Role::Agent,
            exp: claims.exp
        }
    );

    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    assert_eq!(customer.closed().await, Some(1001));
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("exits within 15 s")
        .unwrap();
    assert!(status.success(), "{status}");
}
