//! How the ScyllaDB backend fails when there is no ScyllaDB, against local
//! listeners: nothing listening gives a clear error at once; an endpoint
//! that accepts TCP and never answers gives a clear error within the
//! connect timeout instead of hanging (the driver's own timeout covers only
//! the TCP connect).

use std::time::Duration;

use store::{ScyllaOptions, ScyllaStore, StoreError};
use tokio::net::TcpListener;

/// Far longer than any of these calls may take: a call still running then hangs.
const HANG_GUARD: Duration = Duration::from_secs(30);

async fn connect(address: String, connect_timeout: Duration) -> Result<ScyllaStore, StoreError> {
    let options = ScyllaOptions {
        contact_points: vec![address],
        connect_timeout,
        ..ScyllaOptions::default()
    };
    tokio::time::timeout(HANG_GUARD, ScyllaStore::connect(options))
        .await
        .expect("connect returned instead of hanging")
}

fn backend_message(result: Result<ScyllaStore, StoreError>) -> String {
    match result {
        Err(StoreError::Backend(message)) => message,
        Err(other) => panic!("expected a backend error, got {other:?}"),
        Ok(store) => panic!("connected to {store:?} where no ScyllaDB runs"),
    }
}

#[tokio::test]
async fn nothing_listening_fails_at_once_naming_the_address() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    drop(listener);
    // A connect timeout longer than the guard: only a refused connection
    // can end this call in time.
    let message = backend_message(connect(address.clone(), HANG_GUARD * 2).await);
    assert!(
        message.starts_with(&format!("scylla: cannot connect to {address}: ")),
        "{message}"
    );
}

#[tokio::test]
async fn silent_endpoint_fails_within_the_connect_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    // Accepts every connection and never says a word.
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let message = backend_message(connect(address.clone(), Duration::from_millis(500)).await);
    assert_eq!(
        message,
        format!(
            "scylla: no CQL answer from {address} within 500 ms (the address accepts \
             connections but does not answer as ScyllaDB); check store.scylla_contact_points"
        )
    );
    silent.abort();
}

#[tokio::test]
async fn bad_options_fail_before_any_connect() {
    let options = ScyllaOptions {
        keyspace: "bad name".into(),
        ..ScyllaOptions::default()
    };
    let message = backend_message(ScyllaStore::connect(options).await);
    assert!(
        message.starts_with("scylla: bad option keyspace: `bad name` is not a CQL name"),
        "{message}"
    );
}
