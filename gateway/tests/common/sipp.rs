//! Real SIP peers for the phone channel: `sipp` (Debian's sip-tester) playing
//! the voice crate's scenarios (`voice/tests/sipp/`) or the gateway's own
//! (`gateway/tests/sipp/`), as a caller on a trunk, as an agent's phone
//! registering, or as that phone ringing and answering (a UAS).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use serde_json::json;

use super::TestServer;

/// How long one sipp run may take; its scenarios are short, but a browser
/// test keeps a call up while it clicks through the desktop.
const SIPP_TIMEOUT_SECS: u64 = 40;

/// The result of one sipp run, with its log folder for failure messages.
pub struct SippRun {
    pub output: Output,
    /// Removed with the run.
    pub dir: tempfile::TempDir,
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
        if let Ok(text) = std::fs::read_to_string(self.dir.path().join("errors.log")) {
            report.push_str(&format!("\n--- errors.log ---\n{text}"));
        }
        report
    }

    /// Exit status 0: every message of the scenario went as written.
    pub fn assert_success(&self) {
        assert_eq!(self.output.status.code(), Some(0), "{}", self.report());
    }
}

/// `gateway/tests/sipp/<scenario>` if there is one, else the voice crate's.
fn scenario_path(scenario: &str) -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let own = manifest.join("tests/sipp").join(scenario);
    match own.exists() {
        true => own,
        false => manifest.join("../voice/tests/sipp").join(scenario),
    }
}

/// The sipp command line shared by callers and phones, in a fresh log folder.
fn command(
    scenario: &str,
    server: Option<SocketAddr>,
    args: &[&str],
) -> (tokio::process::Command, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let media_port = free_udp_port().to_string();
    let timeout = format!("{SIPP_TIMEOUT_SECS}s");
    let mut command = tokio::process::Command::new("sipp");
    command
        .current_dir(dir.path())
        .arg("-sf")
        .arg(scenario_path(scenario))
        .args(server.map(|server| server.to_string()))
        .args(["-i", "127.0.0.1", "-mp", &media_port, "-m", "1"])
        .args(["-timeout", &timeout, "-timeout_error", "-nostdin"])
        .args(["-trace_err", "-error_file"])
        .arg(dir.path().join("errors.log"))
        .args(args)
        .kill_on_drop(true);
    (command, dir)
}

async fn run(mut command: tokio::process::Command, dir: tempfile::TempDir) -> SippRun {
    let output = tokio::time::timeout(
        Duration::from_secs(SIPP_TIMEOUT_SECS + 20),
        command.output(),
    )
    .await
    .expect("sipp ends within its own timeout")
    .expect("sipp runs (Debian package sip-tester; scripts/test installs it)");
    SippRun { output, dir }
}

/// Runs `scenario` against `server` for one call, plus `args`.
pub async fn sipp(scenario: &str, server: SocketAddr, args: &[&str]) -> SippRun {
    let (command, dir) = command(scenario, Some(server), args);
    run(command, dir).await
}

/// Starts `scenario` as a UAS (an agent's phone) listening on
/// 127.0.0.1:`port` for one call, plus `args`; returns once it listens,
/// with the run to await.
pub async fn sipp_uas(
    scenario: &str,
    port: u16,
    args: &[&str],
) -> tokio::task::JoinHandle<SippRun> {
    let port_arg = port.to_string();
    let mut uas_args = vec!["-p", port_arg.as_str()];
    uas_args.extend_from_slice(args);
    let (command, dir) = command(scenario, None, &uas_args);
    let uas = tokio::spawn(run(command, dir));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !udp_port_bound(port) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "sipp listens on {port}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    uas
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

/// A UDP port nobody is bound to right now.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server with the phone channel on (SIP on a free port) and a trunk from
/// 127.0.0.0/8, so that a sipp caller is a carrier's call; `tweak` adjusts
/// the rest.
pub async fn phone_server(tweak: impl FnOnce(&mut gateway::Config)) -> TestServer {
    TestServer::start(|config| {
        config.voice.enabled = true;
        config.voice.listen = "127.0.0.1:0".parse().unwrap();
        config.voice.trunks = vec![voice::sip::TrunkConfig::new(
            "loopback",
            &["127.0.0.0/8"],
            "",
            "",
        )];
        tweak(config);
    })
    .await
}

/// The SIP endpoint's address.
pub fn sip_addr(server: &TestServer) -> SocketAddr {
    server.server.sip_addr.expect("the SIP endpoint runs")
}

/// Sets `agent`'s SIP password over REST, as an admin.
pub async fn set_sip_password(server: &TestServer, agent: &str, password: &str) {
    let admin = server.token("admin", gateway::auth::Role::Admin);
    let status = reqwest::Client::new()
        .put(server.http_url(&format!("/api/v1/agents/{agent}/sip-password")))
        .bearer_auth(&admin)
        .json(&json!({"password": password}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 204, "setting {agent}'s SIP password");
}

/// An agent's phone: a sipp UAS playing `scenario` for one call, registered
/// (a real REGISTER with digest) with its Contact on the UAS's port, and
/// the RTP socket its SDP points at.
pub struct Phone {
    pub uas: tokio::task::JoinHandle<SippRun>,
    pub rtp: tokio::net::UdpSocket,
}

/// Sets `agent`'s SIP password and registers their phone, which plays
/// `scenario` (`agent_answer.xml`, …) for the next call.
pub async fn phone(server: &TestServer, agent: &str, scenario: &str) -> Phone {
    const PASSWORD: &str = "desk-phone-7";
    set_sip_password(server, agent, PASSWORD).await;
    let rtp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let rtp_port = rtp.local_addr().unwrap().port().to_string();
    let port = free_udp_port();
    let uas = sipp_uas(
        scenario,
        port,
        &["-s", agent, "-key", "agent_rtp_port", &rtp_port],
    )
    .await;
    let contact_port = port.to_string();
    sipp(
        "agent_register.xml",
        sip_addr(server),
        &[
            "-au",
            agent,
            "-ap",
            PASSWORD,
            "-s",
            agent,
            "-key",
            "contact_port",
            &contact_port,
        ],
    )
    .await
    .assert_success();
    Phone { uas, rtp }
}

/// A caller on the trunk from `number` who stays on the line until
/// switchboard hangs up (`call_until_bye.xml`): the run ends successfully
/// only if it got the BYE.
pub fn caller_until_bye(
    server: &TestServer,
    number: &str,
) -> (tokio::task::JoinHandle<SippRun>, std::net::UdpSocket) {
    let rtp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let rtp_port = rtp.local_addr().unwrap().port().to_string();
    let sip = sip_addr(server);
    let number = number.to_owned();
    let call = tokio::spawn(async move {
        sipp(
            "call_until_bye.xml",
            sip,
            &["-key", "caller", &number, "-key", "rtp_port", &rtp_port],
        )
        .await
    });
    (call, rtp)
}
