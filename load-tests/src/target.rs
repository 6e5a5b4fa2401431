//! The server under load: a switchboard the generator starts itself (fresh
//! store, agents provisioned with `switchboard import`, limits opened up for
//! load), the bare relay, or a server already running elsewhere. Also token
//! minting (PROTOCOL.md §1, "Tokens") and reading the server's memory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::scenario::Params;

/// Which server a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    Switchboard,
    Relay,
}

impl std::fmt::Display for TargetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TargetKind::Switchboard => "switchboard",
            TargetKind::Relay => "relay",
        })
    }
}

/// How to reach (or start) the server.
#[derive(Debug, Clone)]
pub enum Launch {
    /// Start the `switchboard` binary at this path, with extra `KEY=VALUE` environment.
    Switchboard {
        binary: PathBuf,
        env: Vec<(String, String)>,
    },
    /// Start `loadgen relay`.
    Relay,
    /// A server already running: its address, token secret and (for memory) pid.
    External {
        addr: SocketAddr,
        secret: String,
        pid: Option<u32>,
    },
}

/// A server ready for load.
pub struct Server {
    pub kind: TargetKind,
    /// The public listener (the first node's, in a cluster run).
    pub addr: SocketAddr,
    /// The token secret (`auth.secret`).
    pub secret: String,
    /// For reading memory and CPU from /proc (the first node's).
    pub pid: Option<u32>,
    /// The SIP endpoint, when the phone channel runs.
    pub sip: Option<SocketAddr>,
    /// The admin listener (`/metrics`), when known.
    pub admin: Option<SocketAddr>,
    /// Every node of the run, the first being `addr`/`pid`/`admin` (one
    /// for a single server).
    pub nodes: Vec<NodeAddrs>,
    children: Vec<Child>,
    /// The store's files, removed with the server unless kept.
    _data: Option<tempfile::TempDir>,
    /// The node [`Server::kill_node`] killed, if any (`usize::MAX`: none).
    killed: std::sync::atomic::AtomicUsize,
}

/// Where one node of a run listens, and its process.
#[derive(Debug, Clone)]
pub struct NodeAddrs {
    /// Its public listener.
    pub addr: SocketAddr,
    pub pid: Option<u32>,
    /// Its admin listener (`/metrics`), when known.
    pub admin: Option<SocketAddr>,
}

/// Agent ids of a run: `lt-agent-0` …
pub fn agent_id(idx: u32) -> String {
    format!("lt-agent-{idx}")
}

/// Every agent's SIP password in the phone scenarios.
pub const SIP_PASSWORD: &str = "loadgen-phone";

/// The `[voice]` of a phone run: SIP on a free loopback port, calls from
/// loopback as a trunk, and the call cap and INVITE rate opened up for load.
pub const VOICE_CONFIG: &str = r#"# Written by loadgen for one phone run.
[voice]
enabled = true
listen = "127.0.0.1:0"
max_calls = 20000
invite_rate_per_sec = 100000
invite_rate_burst = 100000

[[voice.trunks]]
name = "loadgen"
allow = ["127.0.0.0/8"]
"#;

/// The webhook channel account of the channel scenario, on the SMS channel.
pub const CHANNEL_ACCOUNT: &str = "loadgen";
/// Its shared secret: loadgen signs what it posts with it.
pub const CHANNEL_SECRET: &str = "loadgen-channel-secret-0123";

/// The `[[channels]]` of a channel run: the account whose replies go to `sink`.
pub fn channel_config(sink: &str) -> String {
    format!(
        "# Written by loadgen for one channel run.\n[[channels]]\nkind = \"webhook\"\nname = \"{CHANNEL_ACCOUNT}\"\nchannel = \"sms\"\nsecret = \"{CHANNEL_SECRET}\"\nbase_url = \"{sink}\"\n"
    )
}

impl Server {
    /// Starts (or finds) the server, with `params.agents` agents of
    /// `params.agent_capacity` chats provisioned.
    /// With `phone`, the server runs the phone channel ([`VOICE_CONFIG`])
    /// and the agents are provisioned for calls; with `channel_sink`, it
    /// has the channel scenario's webhook account ([`channel_config`]),
    /// replying to that URL.
    pub async fn start(
        launch: &Launch,
        params: &Params,
        phone: bool,
        channel_sink: Option<&str>,
        work_dir: &Path,
    ) -> Result<Server> {
        if params.nodes > 1 && !matches!(launch, Launch::Switchboard { .. }) {
            bail!("`nodes` > 1 needs a switchboard this run starts (not --url, not the relay)");
        }
        if params.nodes > 1 && (phone || channel_sink.is_some()) {
            bail!(
                "`nodes` > 1 is for the socket scenarios: the phone and channel scenarios run on one node"
            );
        }
        match launch {
            Launch::External { addr, secret, pid } => Ok(Server {
                kind: TargetKind::Switchboard,
                addr: *addr,
                secret: secret.clone(),
                pid: *pid,
                sip: None,
                admin: None,
                nodes: vec![NodeAddrs {
                    addr: *addr,
                    pid: *pid,
                    admin: None,
                }],
                children: Vec::new(),
                _data: None,
                killed: std::sync::atomic::AtomicUsize::new(usize::MAX),
            }),
            Launch::Relay => {
                let exe = std::env::current_exe().context("no path to loadgen itself")?;
                let mut command = Command::new(exe);
                command.args(["relay", "--listen", "127.0.0.1:0"]);
                let (child, addr, _) =
                    spawn_and_find_addr(command, "relay listening on http://", 0).await?;
                let pid = child.id();
                Ok(Server {
                    kind: TargetKind::Relay,
                    addr,
                    secret: random_secret(),
                    pid,
                    sip: None,
                    admin: None,
                    nodes: vec![NodeAddrs {
                        addr,
                        pid,
                        admin: None,
                    }],
                    children: vec![child],
                    _data: None,
                    killed: std::sync::atomic::AtomicUsize::new(usize::MAX),
                })
            }
            Launch::Switchboard { binary, env } => {
                start_switchboard(binary, env, params, phone, channel_sink, work_dir).await
            }
        }
    }

    /// A token for `sub` with `role`, valid for a day.
    pub fn token(&self, sub: &str, role: &str) -> String {
        mint(&self.secret, sub, role)
    }

    /// The server's resident memory now, in KiB (from /proc): every node's
    /// together, but for the one the run killed; unknown if another's is.
    pub fn rss_kib(&self) -> Option<u64> {
        let killed = self.killed.load(std::sync::atomic::Ordering::Relaxed);
        self.rss_per_node_kib()
            .into_iter()
            .enumerate()
            .filter(|(idx, _)| *idx != killed)
            .map(|(_, rss)| rss)
            .sum()
    }

    /// Kills node `idx` (0-based) with SIGKILL, as a crash would; `stop`
    /// reaps it later.
    pub fn kill_node(&self, idx: usize) -> Result<()> {
        let pid = self
            .nodes
            .get(idx)
            .and_then(|node| node.pid)
            .with_context(|| format!("node {} has no process this run started", idx + 1))?;
        let status = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .context("failed to run kill")?;
        if !status.success() {
            bail!("kill -KILL {pid} (node {}) failed: {status}", idx + 1);
        }
        self.killed.store(idx, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Each node's resident memory now, in KiB.
    pub fn rss_per_node_kib(&self) -> Vec<Option<u64>> {
        self.nodes
            .iter()
            .map(|node| node.pid.and_then(rss_kib))
            .collect()
    }

    /// Stops the processes this run started (SIGTERM, then kill after 20 s).
    pub async fn stop(mut self) -> Result<()> {
        let mut result = Ok(());
        for mut child in self.children.drain(..) {
            if let Err(err) = stop_child(&mut child).await {
                result = Err(err);
            }
        }
        result
    }
}

async fn stop_child(child: &mut Child) -> Result<()> {
    if let Some(pid) = child.id() {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        if status.map(|s| s.success()).unwrap_or(false)
            && tokio::time::timeout(Duration::from_secs(20), child.wait())
                .await
                .is_ok()
        {
            return Ok(());
        }
    }
    child.kill().await.context("failed to stop the server")
}

/// Starts `params.nodes` switchboard processes over one fresh store (one
/// server, or a cluster whose members each list every node as ready
/// before this returns), agents imported first.
async fn start_switchboard(
    binary: &Path,
    env: &[(String, String)],
    params: &Params,
    phone: bool,
    channel_sink: Option<&str>,
    work_dir: &Path,
) -> Result<Server> {
    let data = tempfile::Builder::new()
        .prefix("switchboard-data-")
        .tempdir_in(work_dir)
        .context("failed to create the server's data directory")?;
    let secret = random_secret();
    let import = data.path().join("loadgen-import.toml");
    std::fs::write(&import, import_file(params, phone))
        .with_context(|| format!("failed to write {}", import.display()))?;
    let mut base_env = server_env(data.path(), &secret, env);
    if phone {
        let config = data.path().join("loadgen-voice.toml");
        std::fs::write(&config, VOICE_CONFIG)
            .with_context(|| format!("failed to write {}", config.display()))?;
        base_env.push(("SWITCHBOARD_CONFIG".into(), config.display().to_string()));
    }
    if let Some(sink) = channel_sink {
        let config = data.path().join("loadgen-channels.toml");
        std::fs::write(&config, channel_config(sink))
            .with_context(|| format!("failed to write {}", config.display()))?;
        base_env.push(("SWITCHBOARD_CONFIG".into(), config.display().to_string()));
    }
    let output = Command::new(binary)
        .arg("import")
        .arg(&import)
        .envs(base_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .await
        .with_context(|| format!("failed to run {} import", binary.display()))?;
    if !output.status.success() {
        bail!(
            "`switchboard import` failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let cluster = (params.nodes > 1).then(|| cluster_env(params.nodes, &random_secret()));
    let mut children = Vec::new();
    let mut nodes = Vec::new();
    let mut sip = None;
    for idx in 0..params.nodes as usize {
        let mut node_env = base_env.clone();
        if let Some(cluster) = &cluster {
            node_env.extend(cluster[idx].iter().cloned());
        }
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .envs(node_env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        // The banner: the address, `metrics (admin)`, then `SIP (phones)`.
        let (child, addr, banner) = spawn_and_find_addr(
            command,
            "switchboard is running on http://",
            if phone { 2 } else { 1 },
        )
        .await?;
        let admin = banner_addr(&banner, "metrics (admin)  http://");
        if idx == 0 {
            sip = banner_addr(&banner, "SIP (phones)     sip:<agent id>@");
            if phone && sip.is_none() {
                bail!("the server printed no SIP address: {banner:?}");
            }
        }
        nodes.push(NodeAddrs {
            addr,
            pid: child.id(),
            admin,
        });
        children.push(child);
    }
    if params.nodes > 1 {
        let admin_token = mint(&secret, "loadgen", "admin");
        until_cluster_formed(&nodes, &admin_token).await?;
    }
    // For looking into a run's store afterwards.
    let data = if std::env::var_os("LOADGEN_KEEP_DATA").is_some() {
        eprintln!(
            "loadgen: keeping the server's data in {}",
            data.keep().display()
        );
        None
    } else {
        Some(data)
    };
    Ok(Server {
        kind: TargetKind::Switchboard,
        addr: nodes[0].addr,
        secret,
        pid: nodes[0].pid,
        sip,
        admin: nodes[0].admin,
        nodes,
        children,
        _data: data,
        killed: std::sync::atomic::AtomicUsize::new(usize::MAX),
    })
}

/// The `[cluster]` environment of each of `n` nodes (ids 1 … n): every
/// node lists every cluster port as a seed.
fn cluster_env(n: u32, cookie: &str) -> Vec<Vec<(String, String)>> {
    let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
    let seeds = ports
        .iter()
        .map(|port| format!("127.0.0.1:{port}"))
        .collect::<Vec<_>>()
        .join(",");
    ports
        .iter()
        .enumerate()
        .map(|(idx, port)| {
            vec![
                ("SWITCHBOARD_CLUSTER_NODE_ID".into(), (idx + 1).to_string()),
                (
                    "SWITCHBOARD_CLUSTER_LISTEN".into(),
                    format!("127.0.0.1:{port}"),
                ),
                ("SWITCHBOARD_CLUSTER_SEEDS".into(), seeds.clone()),
                ("SWITCHBOARD_CLUSTER_COOKIE".into(), cookie.to_string()),
            ]
        })
        .collect()
}

/// A loopback port free now, below Linux's ephemeral range (32768 and
/// up), where the generator's own connections take their source ports; a
/// clash still shows as a node that fails to start, with its error.
fn free_port() -> u16 {
    let mut rng = crate::rng::Rng::new(
        crate::wire::now_ns() ^ (u64::from(std::process::id()) << 32),
        0,
    );
    (0..1_000)
        .map(|_| 20_000 + (rng.next_u64() % 12_000) as u16)
        .find(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .unwrap_or(0)
}

/// Waits (up to 30 s) until every node lists every node as a ready member
/// (`GET /api/v1/cluster`), so that load starts on the final placement.
async fn until_cluster_formed(nodes: &[NodeAddrs], admin_token: &str) -> Result<()> {
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut seen = String::new();
    loop {
        let mut formed = true;
        for node in nodes {
            let ready = match client
                .get(format!("http://{}/api/v1/cluster", node.addr))
                .bearer_auth(admin_token)
                .send()
                .await
            {
                Ok(response) => response.json::<serde_json::Value>().await.ok(),
                Err(_) => None,
            }
            .map(|status| {
                seen = status["members"].to_string();
                status["members"].as_array().map_or(0, |members| {
                    members.iter().filter(|m| m["ready"] == true).count()
                })
            })
            .unwrap_or(0);
            formed &= ready == nodes.len();
        }
        if formed {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "the {} nodes did not form a cluster within 30 s (last members seen: {seen})",
                nodes.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The environment of a switchboard under load: a fresh store, our secret,
/// no demo, and the per-client limits opened up (the generator's customers
/// send faster than a person and share a handful of source addresses).
fn server_env(data_dir: &Path, secret: &str, extra: &[(String, String)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("SWITCHBOARD_SERVER_LISTEN", "127.0.0.1:0".to_string()),
        ("SWITCHBOARD_SERVER_ADMIN_LISTEN", "127.0.0.1:0".to_string()),
        ("SWITCHBOARD_STORE_DATA_DIR", data_dir.display().to_string()),
        ("SWITCHBOARD_AUTH_SECRET", secret.to_string()),
        ("SWITCHBOARD_DEMO_ENABLED", "false".to_string()),
        (
            "SWITCHBOARD_LIMITS_MESSAGES_PER_SECOND",
            "100000".to_string(),
        ),
        ("SWITCHBOARD_LIMITS_MESSAGE_BURST", "100000".to_string()),
        (
            "SWITCHBOARD_LIMITS_NEW_VISITORS_PER_SECOND",
            "100000".to_string(),
        ),
        ("SWITCHBOARD_LIMITS_NEW_VISITOR_BURST", "100000".to_string()),
        (
            "SWITCHBOARD_LIMITS_NEW_SESSIONS_PER_CUSTOMER_PER_HOUR",
            "0".to_string(),
        ),
        ("RUST_LOG", "warn".to_string()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_string(), value))
    .collect();
    for (key, value) in extra {
        env.retain(|(existing, _)| existing != key);
        env.push((key.clone(), value.clone()));
    }
    env
}

/// The groups of the built-in routing rules and the run's agents, for
/// `switchboard import`. Agents serve every group, on web and app; in a
/// phone run they take one call each and have a SIP password.
pub fn import_file(params: &Params, phone: bool) -> String {
    let mut text = String::from("# Written by loadgen for one run.\n");
    for (id, name) in [
        ("gold_service", "Gold service"),
        ("phone_support", "Phone support"),
        ("default", "Default"),
    ] {
        text.push_str(&format!("\n[[group]]\nid = \"{id}\"\nname = \"{name}\"\n"));
    }
    for idx in 0..params.agents {
        if phone {
            text.push_str(&format!(
                "\n[[agent]]\nid = \"{id}\"\nname = \"Load agent {idx}\"\nrole = \"junior\"\ngroups = [\"phone_support\", \"gold_service\"]\ncapacity = {{ phone = 1 }}\nsip_password = \"{SIP_PASSWORD}\"\n",
                id = agent_id(idx),
            ));
            continue;
        }
        text.push_str(&format!(
            "\n[[agent]]\nid = \"{id}\"\nname = \"Load agent {idx}\"\nrole = \"junior\"\ngroups = [\"default\", \"gold_service\", \"phone_support\"]\ncapacity = {{ web = {cap}, app = {cap}, sms = {cap} }}\n",
            id = agent_id(idx),
            cap = params.agent_capacity,
        ));
    }
    text
}

/// The address after `label` in one of the banner's lines (up to the
/// first space).
fn banner_addr(banner: &[String], label: &str) -> Option<SocketAddr> {
    banner.iter().find_map(|line| {
        let rest = line.trim_start().strip_prefix(label)?;
        rest.split(['/', ' ']).next()?.parse().ok()
    })
}

/// Starts `command` and reads its stdout until a line starting with
/// `prefix` gives the address, and the `then` lines after it; keeps
/// draining stdout afterwards.
async fn spawn_and_find_addr(
    mut command: Command,
    prefix: &str,
    then: usize,
) -> Result<(Child, SocketAddr, Vec<String>)> {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("failed to start the server")?;
    let mut lines = BufReader::new(child.stdout.take().context("no stdout")?).lines();
    let (addr, banner) = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(rest) = line.strip_prefix(prefix) {
                let addr = rest
                    .trim()
                    .parse::<SocketAddr>()
                    .context("unreadable address")?;
                let mut banner = Vec::new();
                while banner.len() < then {
                    match lines.next_line().await? {
                        Some(line) => banner.push(line),
                        None => break,
                    }
                }
                return Ok((addr, banner));
            }
        }
        bail!("the server exited before printing its address")
    })
    .await
    .context("the server did not print its address within 60 s")??;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, addr, banner))
}

/// A `v1.<claims>.<signature>` token.
pub fn mint(secret: &str, sub: &str, role: &str) -> String {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|now| now.as_secs() + 86_400)
        .unwrap_or(u64::MAX / 2);
    let claims = serde_json::json!({ "sub": sub, "role": role, "exp": exp });
    let signed = format!("v1.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac takes any key");
    mac.update(signed.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signed}.{signature}")
}

/// 48 random hex characters (from the clock and the pid: it only has to
/// differ between runs on one machine).
fn random_secret() -> String {
    let seed = crate::wire::now_ns() ^ (u64::from(std::process::id()) << 32);
    let mut rng = crate::rng::Rng::new(seed, 0);
    (0..3).map(|_| format!("{:016x}", rng.next_u64())).collect()
}

/// `VmRSS` of `pid` in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_have_the_documented_shape() {
        let token = mint("0123456789abcdef0123456789abcdef", "lt-agent-0", "agent");
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0], "v1");
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["sub"], "lt-agent-0");
        assert_eq!(claims["role"], "agent");
        assert_eq!(URL_SAFE_NO_PAD.decode(parts[2]).unwrap().len(), 32);
    }

    #[test]
    fn our_own_memory_is_readable() {
        let kib = rss_kib(std::process::id()).expect("VmRSS of this process");
        assert!(kib > 100, "{kib} KiB");
    }

    #[test]
    fn the_import_file_lists_every_agent() {
        let params = Params {
            agents: 3,
            agent_capacity: 7,
            ..Params::default()
        };
        let table: toml::Table = import_file(&params, false).parse().unwrap();
        assert_eq!(table["agent"].as_array().unwrap().len(), 3);
        assert_eq!(table["group"].as_array().unwrap().len(), 3);
        assert_eq!(table["agent"][2]["capacity"]["web"].as_integer(), Some(7));
        let phone: toml::Table = import_file(&params, true).parse().unwrap();
        assert_eq!(phone["agent"][1]["capacity"]["phone"].as_integer(), Some(1));
        assert_eq!(
            phone["agent"][1]["sip_password"].as_str(),
            Some(SIP_PASSWORD)
        );
        let voice: toml::Table = VOICE_CONFIG.parse().unwrap();
        assert_eq!(
            voice["voice"]["trunks"][0]["allow"][0].as_str(),
            Some("127.0.0.0/8")
        );
    }

    #[test]
    fn the_banner_gives_the_admin_and_sip_addresses() {
        let banner = vec![
            "  metrics (admin)  http://127.0.0.1:9101/metrics".to_string(),
            "  SIP (phones)     sip:<agent id>@127.0.0.1:5070  UDP and TCP (docs/voice.md)"
                .to_string(),
        ];
        assert_eq!(
            banner_addr(&banner, "metrics (admin)  http://"),
            Some("127.0.0.1:9101".parse().unwrap())
        );
        assert_eq!(
            banner_addr(&banner, "SIP (phones)     sip:<agent id>@"),
            Some("127.0.0.1:5070".parse().unwrap())
        );
    }
}
