//! What the SIP tests share: an endpoint on a free loopback port with one
//! agent (`agent1` / `secret`), call handlers, a raw UDP client, and a
//! runner for the real `sipp`.

#![allow(dead_code)] // each test binary uses part of it

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use engine::agent::SipCredentials;
use rsipstack::sip::StatusCode;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use voice::sip::{CallHandler, IncomingCall, SipCredentialSource, SipEndpoint, VoiceConfig};

/// The agent every test endpoint knows.
pub const AGENT: &str = "agent1";
/// Its SIP password.
pub const PASSWORD: &str = "secret";

/// Agents' credentials in a map.
pub struct Agents(pub HashMap<String, SipCredentials>);

#[async_trait]
impl SipCredentialSource for Agents {
    async fn sip_credentials(&self, agent_id: &str) -> Result<Option<SipCredentials>, String> {
        Ok(self.0.get(agent_id).cloned())
    }
}

/// Answers every call with `status` (486, 603 …) right away, and reports it.
pub struct Reject {
    pub status: StatusCode,
    pub seen: mpsc::UnboundedSender<IncomingCall>,
}

impl CallHandler for Reject {
    fn incoming_call(&self, call: IncomingCall) {
        if let Err(error) = call.dialog.reject(Some(self.status.clone()), None) {
            panic!("reject failed: {error}");
        }
        // The test may not be looking at calls.
        let _ = self.seen.send(call);
    }
}

/// Keeps every call ringing (never answers), so calls pile up.
pub struct Hold {
    pub held: mpsc::UnboundedSender<IncomingCall>,
}

impl CallHandler for Hold {
    fn incoming_call(&self, call: IncomingCall) {
        // The test keeps the receiver for as long as calls must stay up.
        let _ = self.held.send(call);
    }
}

/// The default `[voice]` on a free loopback port.
pub fn config() -> VoiceConfig {
    VoiceConfig {
        enabled: true,
        listen: "127.0.0.1:0".parse().unwrap(),
        ..VoiceConfig::default()
    }
}

/// Starts an endpoint for `config` with `agent1` known and `calls` taking calls.
pub async fn start(config: VoiceConfig, calls: Arc<dyn CallHandler>) -> SipEndpoint {
    start_with_agents(config, calls, &[(AGENT, PASSWORD)]).await
}

/// Starts an endpoint for `config` knowing `agents` (id, SIP password).
pub async fn start_with_agents(
    config: VoiceConfig,
    calls: Arc<dyn CallHandler>,
    agents: &[(&str, &str)],
) -> SipEndpoint {
    let agents = Agents(
        agents
            .iter()
            .map(|(agent, password)| {
                (
                    agent.to_string(),
                    voice::sip::credentials(agent, &config.realm, password),
                )
            })
            .collect(),
    );
    SipEndpoint::start(&config, Arc::new(agents), calls, CancellationToken::new())
        .await
        .expect("endpoint starts")
}

/// A handler that rejects with 486 and a receiver of the calls it saw.
pub fn busy() -> (Arc<dyn CallHandler>, mpsc::UnboundedReceiver<IncomingCall>) {
    let (seen, calls) = mpsc::unbounded_channel();
    (
        Arc::new(Reject {
            status: StatusCode::BusyHere,
            seen,
        }),
        calls,
    )
}

/// A UDP socket on loopback that speaks raw SIP to `server`.
pub struct RawClient {
    pub socket: UdpSocket,
    pub server: SocketAddr,
}

impl RawClient {
    pub async fn new(server: SocketAddr) -> Self {
        RawClient {
            socket: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            server,
        }
    }

    pub fn local(&self) -> SocketAddr {
        self.socket.local_addr().unwrap()
    }

    pub async fn send(&self, message: &[u8]) {
        self.socket.send_to(message, self.server).await.unwrap();
    }

    /// The next datagram within `wait`, as text; `None` if nothing came.
    pub async fn recv_within(&self, wait: Duration) -> Option<String> {
        let mut buf = vec![0u8; 65_536];
        match tokio::time::timeout(wait, self.socket.recv(&mut buf)).await {
            Ok(Ok(len)) => Some(String::from_utf8_lossy(&buf[..len]).into_owned()),
            Ok(Err(error)) => panic!("recv failed: {error}"),
            Err(_) => None,
        }
    }

    /// The next response that is not provisional-100, or panics after 5 s.
    pub async fn recv_final(&self) -> String {
        loop {
            let message = self
                .recv_within(Duration::from_secs(5))
                .await
                .expect("a response within 5 s");
            if !message.starts_with("SIP/2.0 100") {
                return message;
            }
        }
    }

    /// OPTIONS → the status code of the answer.
    pub async fn options(&self, branch: &str) -> Option<u16> {
        self.send(options_request(self.local(), self.server, branch).as_bytes())
            .await;
        let reply = self.recv_within(Duration::from_secs(3)).await?;
        Some(status_of(&reply))
    }
}

/// An out-of-dialog OPTIONS from `local` to `server`.
pub fn options_request(local: SocketAddr, server: SocketAddr, branch: &str) -> String {
    format!(
        "OPTIONS sip:{server} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-{branch}\r\n\
         From: <sip:probe@{local}>;tag=probe-{branch}\r\n\
         To: <sip:{server}>\r\n\
         Call-ID: options-{branch}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Max-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// The status code of a response's start line.
pub fn status_of(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not a response: {response}"))
}

/// Every value of header `name` in a message.
pub fn header_values<'a>(message: &'a str, name: &str) -> Vec<&'a str> {
    message
        .lines()
        .filter_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
        })
        .collect()
}

/// The result of one sipp run, with its logs for failure messages.
pub struct SippRun {
    pub output: Output,
    pub dir: PathBuf,
}

impl SippRun {
    /// Everything sipp said, for an assertion message.
    pub fn report(&self) -> String {
        let mut report = format!(
            "sipp exited with {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.output.status.code(),
            String::from_utf8_lossy(&self.output.stdout),
            String::from_utf8_lossy(&self.output.stderr),
        );
        for name in ["errors.log", "screen.log"] {
            if let Ok(text) = std::fs::read_to_string(self.dir.join(name)) {
                report.push_str(&format!("\n--- {name} ---\n{text}"));
            }
        }
        report
    }

    /// sipp's final screen (statistics per scenario message).
    pub fn screen(&self) -> String {
        std::fs::read_to_string(self.dir.join("screen.log")).unwrap_or_default()
    }

    /// Exit status 0 (every call passed), else fails with sipp's logs; the
    /// logs of a passing run are removed.
    pub fn assert_success(&self) {
        assert_eq!(self.output.status.code(), Some(0), "{}", self.report());
        // Leftover logs in the temp dir are harmless if removal fails.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `sipp` with scenario `voice/tests/sipp/<scenario>` against
/// `server` for one call (bounded by a 20 s global timeout) plus `args`.
pub async fn sipp(scenario: &str, server: SocketAddr, args: &[&str]) -> SippRun {
    let (command, dir) = sipp_command(scenario, Some(server), args);
    run(command, dir).await
}

/// Starts `sipp` as a UAS (an agent's phone) with scenario `<scenario>`
/// listening on 127.0.0.1:`port` for one call plus `args`; returns once it
/// listens, with the run to await.
pub async fn sipp_uas(
    scenario: &str,
    port: u16,
    args: &[&str],
) -> tokio::task::JoinHandle<SippRun> {
    let port_arg = port.to_string();
    let mut uas_args = vec!["-p", port_arg.as_str()];
    uas_args.extend_from_slice(args);
    let (command, dir) = sipp_command(scenario, None, &uas_args);
    let run = tokio::spawn(run(command, dir));
    assert!(
        eventually(Duration::from_secs(10), || udp_port_bound(port)).await,
        "sipp listens on {port}"
    );
    run
}

/// Whether something is bound to 127.0.0.1:`port` over UDP, from
/// /proc/net/udp (probing with a bind could take the port from sipp).
fn udp_port_bound(port: u16) -> bool {
    let wanted = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/udp").is_ok_and(|table| {
        table
            .lines()
            .skip(1)
            .any(|line| line.split_whitespace().nth(1) == Some(wanted.as_str()))
    })
}

async fn run(mut command: tokio::process::Command, dir: PathBuf) -> SippRun {
    let output = tokio::time::timeout(Duration::from_secs(40), command.output())
        .await
        .expect("sipp ends within its own timeout")
        .expect("sipp runs (Debian package sip-tester; scripts/test installs it)");
    SippRun { output, dir }
}

/// The sipp command line shared by callers and phones, and its log dir.
fn sipp_command(
    scenario: &str,
    server: Option<SocketAddr>,
    args: &[&str],
) -> (tokio::process::Command, PathBuf) {
    static RUN: AtomicUsize = AtomicUsize::new(0);
    let scenario_path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(scenario);
    let dir = std::env::temp_dir().join(format!(
        "switchboard-sipp-{}-{}",
        std::process::id(),
        RUN.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let media_port = free_udp_port().to_string();
    let mut command = tokio::process::Command::new("sipp");
    command
        .current_dir(&dir)
        .arg("-sf")
        .arg(&scenario_path)
        .args(server.map(|server| server.to_string()))
        .args(["-i", "127.0.0.1", "-mp", &media_port, "-m", "1"])
        .args(["-timeout", "20s", "-timeout_error", "-nostdin"])
        .args(["-trace_err", "-error_file"])
        .arg(dir.join("errors.log"))
        .args(["-trace_screen", "-screen_file"])
        .arg(dir.join("screen.log"))
        .args(args)
        .kill_on_drop(true);
    (command, dir)
}

/// A UDP port nobody is bound to right now.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `condition` every 10 ms until it holds or `within` passes.
pub async fn eventually(within: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if condition() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
