//! Test kit: a server on port 0 over a temporary SQLite store with the demo
//! data, tokens, and a WebSocket client that keeps frames it was not asked
//! for and tracks the last `seq` per session like a real client.

#![allow(dead_code)]

pub mod cluster;
pub mod platform;
pub mod prometheus;
pub mod sipp;

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use gateway::auth::{Claims, Role, unix_now};
use gateway::{Config, Server};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for a frame that should come.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A running server and its data folder.
pub struct TestServer {
    /// The server.
    pub server: Server,
    /// Holds the SQLite file until the test ends.
    pub dir: TempDir,
}

/// The test configuration: port 0, a temporary data folder, short timers.
pub fn test_config(dir: &TempDir) -> Config {
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.admin_listen = "127.0.0.1:0".parse().unwrap();
    config.server.shutdown_grace_ms = 2_000;
    config.store.data_dir = dir.path().to_path_buf();
    // Long enough for an accept on a slow, busy machine (an offer that
    // lapses fails the accept); tests of the lapse set their own.
    config.routing.offer_timeout_ms = 5_000;
    config.routing.wrap_up_ms = 60_000;
    config.routing.queue_update_ms = 200;
    config
}

impl TestServer {
    /// The value of the first series `name` on `/metrics` whose line holds
    /// every one of `labels` (`key="value"`); fails when there is none.
    #[allow(dead_code)] // each test binary uses part of the kit
    pub async fn metric(&self, name: &str, labels: &[&str]) -> f64 {
        let url = format!("http://{}/metrics", self.server.admin_addr);
        let text = reqwest::get(url).await.unwrap().text().await.unwrap();
        text.lines()
            .find(|line| {
                (line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} ")))
                    && labels.iter().all(|label| line.contains(label))
            })
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("{name} {labels:?} not on /metrics"))
    }

    /// Starts a server; `tweak` adjusts the test configuration.
    pub async fn start(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(&dir);
        tweak(&mut config);
        let server = Server::start(config).await.expect("server starts");
        TestServer { server, dir }
    }

    /// A token for `sub` as `role`, valid for an hour.
    pub fn token(&self, sub: &str, role: Role) -> String {
        self.server.state.signer.mint(&Claims {
            sub: sub.into(),
            role,
            exp: unix_now() + 3600,
        })
    }

    /// `ws://…/ws/customer?token=…` and so on.
    pub fn ws_url(&self, path: &str, token: &str) -> String {
        format!("ws://{}{path}?token={token}", self.server.addr)
    }

    /// `http://…{path}`.
    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.addr)
    }

    /// `GET path` with `token`, which must answer 200 with JSON.
    pub async fn get_json(&self, path: &str, token: &str) -> Value {
        let response = reqwest::Client::new()
            .get(self.http_url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request sent");
        assert_eq!(response.status().as_u16(), 200, "GET {path}");
        response.json().await.expect("a JSON answer")
    }

    /// A new web visitor's customer token (`POST /api/v1/visitors`).
    pub async fn visitor_token(&self) -> String {
        let visitor: Value = reqwest::Client::new()
            .post(self.http_url("/api/v1/visitors"))
            .send()
            .await
            .expect("request sent")
            .json()
            .await
            .expect("a JSON answer");
        visitor["token"].as_str().expect("a token").to_string()
    }

    /// A customer socket (web), connected, not yet said hello.
    pub async fn customer(&self, customer: &str) -> Client {
        Client::connect(&self.ws_url("/ws/customer", &self.token(customer, Role::Customer))).await
    }

    /// An agent socket after `hello`, with the welcome consumed and presence set available.
    pub async fn available_agent(&self, agent: &str) -> Client {
        let role = if agent == "wang.min" {
            Role::Supervisor
        } else {
            Role::Agent
        };
        let mut client = Client::connect(&self.ws_url("/ws/agent", &self.token(agent, role))).await;
        client.hello(json!({})).await;
        let presence = client
            .request(json!({"type": "presence", "state": "available"}))
            .await;
        assert_eq!(presence["type"], "presence", "{presence}");
        client
    }
}

/// A WebSocket client.
pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Frames received but not yet taken.
    pending: VecDeque<Value>,
    /// Highest `seq` seen per session (what a real client stores for resume).
    pub last_seq: BTreeMap<String, u64>,
    next_request: u64,
}

impl Client {
    /// Connects or panics.
    pub async fn connect(url: &str) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .unwrap_or_else(|err| panic!("connect {url}: {err}"));
        Client::from_stream(ws)
    }

    /// Wraps a connected stream.
    pub fn from_stream(ws: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Client {
        Client {
            ws,
            pending: VecDeque::new(),
            last_seq: BTreeMap::new(),
            next_request: 0,
        }
    }

    /// Sends a JSON frame.
    pub async fn send(&mut self, frame: Value) {
        self.ws
            .send(Message::Text(frame.to_string().into()))
            .await
            .expect("send");
    }

    /// Sends JSON frames in one write, so the server finds them all in its
    /// buffer at once.
    pub async fn send_batch(&mut self, frames: &[Value]) {
        for frame in frames {
            self.ws
                .feed(Message::Text(frame.to_string().into()))
                .await
                .expect("send");
        }
        self.ws.flush().await.expect("send");
    }

    /// Sends a raw message.
    pub async fn send_raw(&mut self, message: Message) {
        self.ws.send(message).await.expect("send");
    }

    /// The next frame from the socket (not the pending buffer); `Err` with
    /// the close code and reason when the server closed.
    pub async fn read(&mut self) -> Result<Value, (Option<u16>, String)> {
        loop {
            let message = tokio::time::timeout(PATIENCE, self.ws.next())
                .await
                .expect("a frame within the patience");
            match message {
                Some(Ok(Message::Text(text))) => {
                    let value: Value = serde_json::from_str(&text).expect("server frames are JSON");
                    self.track(&value);
                    return Ok(value);
                }
                Some(Ok(Message::Close(frame))) => {
                    return Err((
                        frame.as_ref().map(|f| u16::from(f.code)),
                        frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                    ));
                }
                Some(Ok(_)) => continue,
                Some(Err(err)) => return Err((None, err.to_string())),
                None => return Err((None, "stream ended".into())),
            }
        }
    }

    fn track(&mut self, frame: &Value) {
        if let (Some(session), Some(seq)) = (frame["session"].as_str(), frame["seq"].as_u64())
            && frame["type"] != "ack"
        {
            let last = self.last_seq.entry(session.to_string()).or_insert(0);
            *last = (*last).max(seq);
        }
    }

    /// The first frame (pending or new) that `matches`; others stay pending.
    pub async fn wait_for(&mut self, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        if let Some(index) = self.pending.iter().position(&matches) {
            return self.pending.remove(index).unwrap();
        }
        loop {
            match self.read().await {
                Ok(frame) if matches(&frame) => return frame,
                Ok(frame) => self.pending.push_back(frame),
                Err(close) => panic!(
                    "waiting for {what}: socket closed {close:?}; pending {:?}",
                    self.pending
                ),
            }
        }
    }

    /// The first frame of `kind`.
    pub async fn expect(&mut self, kind: &str) -> Value {
        self.wait_for(kind, |frame| frame["type"] == kind).await
    }

    /// Sends `frame` with a fresh `request_id` and returns the reply
    /// carrying it (`ack`, `ok`, `error`, `welcome`, `presence`, …).
    pub async fn request(&mut self, mut frame: Value) -> Value {
        self.next_request += 1;
        let id = format!("r{}", self.next_request);
        frame["request_id"] = json!(id);
        self.send(frame).await;
        self.wait_for(&format!("reply to {id}"), |reply| reply["request_id"] == id)
            .await
    }

    /// `hello` with `extra` fields; returns the welcome.
    pub async fn hello(&mut self, extra: Value) -> Value {
        let mut frame = json!({"type": "hello"});
        if let Some(fields) = extra.as_object() {
            for (key, value) in fields {
                frame[key] = value.clone();
            }
        }
        let welcome = self.request(frame).await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        welcome
    }

    /// `hello` resuming from every session's last seen `seq`.
    pub async fn resume(&mut self, last_seq: &BTreeMap<String, u64>) -> Value {
        self.hello(json!({ "last_seq": last_seq })).await
    }

    /// Sends a message and returns its ack (panics on an error reply).
    pub async fn say(&mut self, extra: Value, client_message_id: &str, body: &str) -> Value {
        let mut frame =
            json!({"type": "message", "client_message_id": client_message_id, "body": body});
        if let Some(fields) = extra.as_object() {
            for (key, value) in fields {
                frame[key] = value.clone();
            }
        }
        let ack = self.request(frame).await;
        assert_eq!(ack["type"], "ack", "{ack}");
        ack
    }

    /// Frames already received and not yet taken, in order.
    pub fn take_pending(&mut self) -> Vec<Value> {
        self.pending.drain(..).collect()
    }

    /// Reads until the server closes; returns the close code.
    pub async fn closed(&mut self) -> Option<u16> {
        loop {
            match self.read().await {
                Ok(frame) => self.pending.push_back(frame),
                Err((code, _)) => return code,
            }
        }
    }

    /// Closes from the client side.
    pub async fn close(mut self) {
        // The server may already be gone.
        let _ = self
            .ws
            .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            }))
            .await;
    }

    /// Drops the TCP connection without a close frame (a lost network).
    pub fn drop_connection(self) {
        drop(self.ws);
    }
}

/// The `session` of a frame.
pub fn session_of(frame: &Value) -> String {
    frame["session"]
        .as_str()
        .unwrap_or_else(|| panic!("no session in {frame}"))
        .to_string()
}

/// A `switchboard` process started from the built binary.
pub struct Process {
    /// The child; killed when dropped.
    pub child: tokio::process::Child,
    /// `127.0.0.1:<port>`.
    pub addr: String,
    /// The admin listener (`/metrics`), `127.0.0.1:<port>`.
    pub admin_addr: String,
    /// What it printed up to the end of the demo banner.
    pub banner: String,
}

/// Starts `switchboard` on port 0 over `data_dir` with the demo, extra
/// environment `env`, and (if given) a lower open-file limit; returns once
/// it printed its banner. Its stdout keeps being drained afterwards.
pub async fn start_process(
    data_dir: &std::path::Path,
    env: &[(&str, &str)],
    open_files: Option<u32>,
) -> Process {
    use tokio::io::AsyncBufReadExt;
    let binary = env!("CARGO_BIN_EXE_switchboard");
    let mut command = match open_files {
        Some(limit) => {
            let mut command = tokio::process::Command::new("bash");
            command.args(["-c", &format!("ulimit -n {limit} && exec \"$0\""), binary]);
            command
        }
        None => tokio::process::Command::new(binary),
    };
    let mut child = command
        .env("SWITCHBOARD_SERVER_LISTEN", "127.0.0.1:0")
        .env("SWITCHBOARD_SERVER_ADMIN_LISTEN", "127.0.0.1:0")
        .env("SWITCHBOARD_STORE_DATA_DIR", data_dir)
        // The demo's phone channel on a free port: tests run side by side.
        .env("SWITCHBOARD_VOICE_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("switchboard starts");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let (addr, banner) = tokio::time::timeout(Duration::from_secs(30), async {
        let mut banner = Vec::new();
        let mut addr = None;
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix("switchboard is running on http://") {
                addr = Some(rest.trim().to_string());
            }
            // The demo banner's last line shows the customer socket in use.
            let last = line.contains("Wang Fang token");
            banner.push(line);
            if last {
                return (addr.expect("the address comes first"), banner.join("\n"));
            }
        }
        panic!("switchboard exited before printing its banner: {banner:?}");
    })
    .await
    .expect("switchboard prints its banner within 30 s");
    // Keep draining stdout so the process never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let admin_addr = banner
        .lines()
        .find_map(|line| line.trim().strip_prefix("metrics (admin)  http://"))
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .expect("the banner shows the admin listener")
        .to_string();
    Process {
        child,
        addr,
        admin_addr,
        banner,
    }
}

impl Process {
    /// `GET {path}` with `token`: the JSON answer, whatever the status.
    pub async fn get_json(&self, path: &str, token: &str) -> Value {
        reqwest::Client::new()
            .get(format!("http://{}{path}", self.addr))
            .bearer_auth(token)
            .send()
            .await
            .expect("request sent")
            .json()
            .await
            .expect("a JSON answer")
    }
}

/// A token signed with the secret a process created in `data_dir`.
pub fn process_token(data_dir: &std::path::Path, sub: &str, role: Role) -> String {
    let path = data_dir.join("auth.secret");
    gateway::auth::TokenSigner::from_secret_or_file("", &path)
        .unwrap()
        .mint(&Claims {
            sub: sub.into(),
            role,
            exp: unix_now() + 3600,
        })
}

/// `agent` gets the offer of `session` and accepts it.
pub async fn accept_offer(agent: &mut Client, session: &str) {
    let offer = agent
        .wait_for("the offer", |f| {
            f["type"] == "offer" && f["session"] == session
        })
        .await;
    assert_eq!(offer["session"], session);
    let accepted = agent
        .request(json!({"type": "accept", "session": session}))
        .await;
    assert_eq!(accepted["type"], "ok", "{accepted}");
}

/// The next event of `events` (an agent's or customer's subscription) that
/// `wanted` picks; fails after [`PATIENCE`].
pub async fn next_event(
    events: &mut actors::Subscription,
    wanted: impl Fn(&actors::Event) -> bool,
) -> actors::Event {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let event = events.recv().await.expect("the subscription stays open");
            if wanted(&event) {
                return (*event).clone();
            }
        }
    })
    .await
    .expect("the event comes in time")
}

/// Waits for the next offer in `agent`'s `events` and accepts it; its session.
pub async fn take_offer(
    board: &actors::Switchboard,
    events: &mut actors::Subscription,
    agent: &engine::ids::AgentId,
) -> engine::ids::SessionId {
    let offer = next_event(events, |event| {
        matches!(event.kind, actors::EventKind::Offered { .. })
    })
    .await;
    board.accept(agent, offer.session).await.unwrap();
    offer.session
}
