//! The protocol between the coordinator and its generator processes
//! (`loadgen worker`), against a real switchboard: the coordinator's part
//! is played here, so that each process gets a chosen share.
//!
//! The switchboard binary comes from the same target directory
//! (`cargo test --workspace` builds it; `scripts/test` builds it first).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use load_tests::scenario::{Kind, Params};
use load_tests::stats::count;
use load_tests::target::{Launch, Server, agent_id};
use load_tests::worker::WorkerPlan;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

fn switchboard() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_loadgen")).with_file_name("switchboard");
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build -p gateway` (scripts/test does)",
        path.display()
    );
    path
}

/// One `loadgen worker` process, killed if the test ends early.
struct Worker {
    _child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Worker {
    async fn start(plan: &WorkerPlan) -> Worker {
        let mut child = Command::new(env!("CARGO_BIN_EXE_loadgen"))
            .arg("worker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("loadgen worker starts");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut worker = Worker {
            _child: child,
            stdin,
            stdout,
        };
        worker.say(&serde_json::to_string(plan).unwrap()).await;
        worker
    }

    async fn say(&mut self, line: &str) {
        self.stdin.write_all(line.as_bytes()).await.unwrap();
        self.stdin.write_all(b"\n").await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// The next line that is not a progress line: its kind and its body.
    async fn next(&mut self) -> (String, Value) {
        loop {
            let text = tokio::time::timeout(Duration::from_secs(60), self.stdout.next_line())
                .await
                .expect("a line from the worker within 60 s")
                .unwrap()
                .expect("the worker is still running");
            let line: Value = serde_json::from_str(&text).unwrap();
            let (kind, body) = match line {
                Value::String(kind) => (kind, Value::Null),
                Value::Object(map) => map.into_iter().next().unwrap(),
                other => panic!("unexpected worker line {other}"),
            };
            if kind != "progress" {
                return (kind, body);
            }
        }
    }
}

fn counter(snapshot: &Value, name: &str) -> i64 {
    snapshot["counters"][name].as_i64().unwrap_or(0)
}

/// The server gives any process's customers to any agent. A process whose
/// own customers are done must not sign its agents off while they still
/// hold sessions of another process's customers: their next messages would
/// be stored and acked, but nobody would read them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_keep_answering_until_every_process_s_customers_are_done() {
    let params = Params {
        customers: 3,
        agents: 1,
        agent_capacity: 3,
        rate: 30.0,
        duration_secs: 2.0,
        drain_secs: 5.0,
        processes: 2,
        sources: 1,
        ..Params::default()
    };
    let work_dir = tempfile::tempdir().unwrap();
    let launch = Launch::Switchboard {
        binary: switchboard(),
        env: Vec::new(),
    };
    let server = Server::start(&launch, &params, false, None, work_dir.path())
        .await
        .unwrap();
    let plan = |index: u32, customers: u32, agents: Vec<(String, String)>| WorkerPlan {
        index,
        kind: Kind::SteadyChat,
        params: params.clone(),
        addr: server.addr,
        nodes: vec![server.addr],
        sources: vec!["127.0.0.1".parse().unwrap()],
        customers,
        customers_total: params.customers,
        agents,
        arrival_share: 0.5,
        first_session: 0,
        sessions: 0,
        admin_token: server.token("loadgen", "admin"),
    };
    // Process 0 signs in the only agent and drives no customer; process 1
    // drives every customer, so all its sessions are held by process 0.
    let agent = (agent_id(0), server.token(&agent_id(0), "agent"));
    let mut agents_only = Worker::start(&plan(0, 0, vec![agent])).await;
    assert_eq!(agents_only.next().await.0, "ready");
    let mut customers_only = Worker::start(&plan(1, params.customers, Vec::new())).await;
    assert_eq!(customers_only.next().await.0, "ready");
    agents_only.say("go").await;
    customers_only.say("go").await;

    let (kind, _) = agents_only.next().await;
    assert_eq!(
        kind, "customers_done",
        "a process with no customers left must keep its agents until `stop`"
    );
    let (kind, _) = customers_only.next().await;
    assert_eq!(kind, "customers_done");
    agents_only.say("stop").await;
    customers_only.say("stop").await;

    let (kind, agents_final) = agents_only.next().await;
    assert_eq!(kind, "done");
    let (kind, customers_final) = customers_only.next().await;
    assert_eq!(kind, "done");
    for snapshot in [&agents_final, &customers_final] {
        assert_eq!(snapshot["errors"], serde_json::json!({}), "{snapshot}");
    }
    let sent = counter(&customers_final, count::CUSTOMER_SENT);
    assert!(sent > 3, "{sent} customer messages sent");
    assert_eq!(counter(&customers_final, count::CUSTOMER_ACKED), sent);
    assert_eq!(counter(&agents_final, count::AGENT_RECEIVED), sent);
    assert_eq!(counter(&agents_final, count::AGENT_ACKED), sent);
    assert_eq!(counter(&customers_final, count::CUSTOMER_RECEIVED), sent);
    server.stop().await.unwrap();
}
