//! The shared Store contract suite against a real ScyllaDB, whenever
//! `SCYLLA_URI` names one (`host:port`, e.g. `127.0.0.1:9042`, as
//! `docker compose --profile scylla up scylla` gives).
//!
//! No ScyllaDB server can be installed on the machines this project is
//! built on, so there the runner says so and runs nothing; everywhere the
//! same cases run on the embedded stores (`cargo test -p engine`). Each
//! case gets a keyspace of its own, dropped afterwards.

use std::process::ExitCode;
use std::time::Duration;

use store::contract::cases;
use store::{Replication, ScyllaOptions, ScyllaStore};

fn main() -> ExitCode {
    let Ok(uri) = std::env::var("SCYLLA_URI") else {
        println!(
            "scylla contract suite: SCYLLA_URI is not set, so it did not run here \
             (no ScyllaDB server on this machine); the same cases ran on SQLite and memory"
        );
        return ExitCode::SUCCESS;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut n_passed = 0;
    let mut n_failed = 0;
    for (index, (name, case)) in cases().into_iter().enumerate() {
        let keyspace = format!("switchboard_contract_{}_{index}", std::process::id());
        let options = ScyllaOptions {
            contact_points: uri.split(',').map(str::to_owned).collect(),
            keyspace: keyspace.clone(),
            replication: Replication::Simple { factor: 1 },
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            ..ScyllaOptions::default()
        };
        let outcome = runtime.block_on(async {
            let store = ScyllaStore::connect(options)
                .await
                .map_err(|err| format!("connect: {err}"))?;
            let store = std::sync::Arc::new(store);
            let run = store.clone();
            let result = tokio::spawn(async move { case(run.as_ref()).await })
                .await
                .map_err(|err| format!("{err}"));
            let dropped = store.drop_keyspace().await;
            result?;
            dropped.map_err(|err| format!("dropping keyspace {keyspace}: {err}"))
        });
        match outcome {
            Ok(()) => {
                n_passed += 1;
                println!("test scylla_contract::{name} ... ok");
            }
            Err(why) => {
                n_failed += 1;
                println!("test scylla_contract::{name} ... FAILED: {why}");
            }
        }
    }
    println!("{n_passed} passed, {n_failed} failed");
    if n_failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
