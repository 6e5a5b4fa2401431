//! The `switchboard` command line: configuration errors name the key,
//! `token` refuses what it cannot mint, and `import` provisions agents the
//! server then serves, or writes nothing and names the entry at fault.
//! `--version` names the commit, `--help` the roles and the log settings,
//! and no secret shows in `check-config`, a `Debug` print or a server's log.

use crate::common;

use std::process::Command;
use std::time::Duration;

use common::{Client, process_token, start_process};
use gateway::auth::Role;
use serde_json::{Value, json};

fn switchboard(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Arguments, environment, and what stderr must say.
type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);

#[test]
fn bad_configuration_stops_with_the_key_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("switchboard.toml");
    std::fs::write(&file, "[limits]\nmessages_per_second = \"fast\"\n").unwrap();
    let file = file.to_str().unwrap();
    let cases: [Case; 4] = [
        (
            &["--config", file, "check-config"],
            &[],
            "config key `limits.messages_per_second`",
        ),
        (
            &["check-config"],
            &[("SWITCHBOARD_SERVER_LISTEN", "nowhere")],
            "config key `server.listen` (from SWITCHBOARD_SERVER_LISTEN)",
        ),
        (
            &["check-config"],
            &[("SWITCHBOARD_ROUTING_OFER_TIMEOUT_MS", "5")],
            "unknown key",
        ),
        (
            &["--config", "/no/such/file.toml", "check-config"],
            &[],
            "cannot read config file /no/such/file.toml",
        ),
    ];
    for (args, env, expected) in cases {
        let (ok, _, stderr) = switchboard(args, env);
        assert!(!ok, "{args:?} {env:?} should fail");
        assert!(stderr.contains(expected), "{args:?} {env:?}: {stderr}");
    }
    let (ok, stdout, _) = switchboard(
        &["check-config"],
        &[("SWITCHBOARD_LIMITS_MESSAGES_PER_SECOND", "7")],
    );
    assert!(ok);
    assert!(stdout.contains("messages_per_second = 7"), "{stdout}");
}

#[test]
fn token_refuses_unknown_roles_and_empty_subjects() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let env = [("SWITCHBOARD_STORE_DATA_DIR", data)];
    let (ok, _, stderr) = switchboard(&["token", "--role", "root", "--sub", "x"], &env);
    assert!(
        !ok && stderr.contains("invalid value 'root' for '--role <ROLE>'")
            && stderr.contains("[possible values: customer, agent, supervisor, admin]"),
        "{stderr}"
    );
    let (ok, _, stderr) = switchboard(&["token", "--role", "admin", "--sub", ""], &env);
    assert!(
        !ok && stderr.contains("--sub must not be empty"),
        "{stderr}"
    );
    let (ok, stdout, _) = switchboard(
        &[
            "token",
            "--role",
            "admin",
            "--sub",
            "ops",
            "--ttl-secs",
            "60",
        ],
        &env,
    );
    assert!(ok && stdout.starts_with("v1."), "{stdout}");
}

/// Groups for the default routing rules, one agent with a chat capacity of
/// 20, and a customer known on the web.
const IMPORT: &str = r#"
[[group]]
id = "default"
name = "Default"
sla_threshold_secs = 20

[[group]]
id = "gold_service"

[[group]]
id = "phone_support"
sla_threshold_by_channel = { phone = 10 }

[[agent]]
id = "lt-agent-1"
name = "Load agent 1"
role = "junior"
groups = ["default"]
skills = { orders = 3 }
capacity = { web = 20, app = 20 }
sip_password = "phone-secret-1"

[[customer]]
id = "lt-cust-1"
name = "Load customer 1"
identities = ["web:lt-visitor-1"]
"#;

#[tokio::test]
async fn import_provisions_agents_that_the_server_then_serves() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let file = dir.path().join("provision.toml");
    std::fs::write(&file, IMPORT).unwrap();
    let env = [("SWITCHBOARD_STORE_DATA_DIR", data_dir.to_str().unwrap())];
    let (ok, stdout, stderr) = switchboard(&["import", file.to_str().unwrap()], &env);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("imported 3 group(s), 1 agent(s), 1 customer(s)"),
        "{stdout}"
    );
    assert!(stdout.contains("when the server next starts"), "{stdout}");
    // Importing again is an upsert: same counts, still fine; without
    // `sip_password` the agent keeps the one it has.
    std::fs::write(
        &file,
        IMPORT.replace("sip_password = \"phone-secret-1\"\n", ""),
    )
    .unwrap();
    let (ok, stdout, stderr) = switchboard(&["import", file.to_str().unwrap()], &env);
    assert!(ok && stdout.contains("1 agent(s)"), "{stdout}{stderr}");
    // The SIP password is stored hashed for the realm, never in clear.
    {
        use store::Store;
        let db = data_dir.join("switchboard.db");
        let store = store::SqliteStore::open(&db).unwrap();
        let agent = engine::ids::AgentId::new("lt-agent-1");
        let stored = store.get_agent(&agent).await.unwrap().unwrap();
        assert_eq!(
            stored.sip,
            Some(voice::sip::credentials(
                "lt-agent-1",
                "switchboard",
                "phone-secret-1"
            ))
        );
        store.close().await.unwrap();
        let raw = std::fs::read(&db).unwrap();
        assert!(
            !raw.windows(14).any(|w| w == b"phone-secret-1"),
            "the password in clear in the database"
        );
    }

    let server = start_process(&data_dir, &[], None).await;
    let admin = process_token(&data_dir, "ops", Role::Admin);
    let agents: Value = reqwest::Client::new()
        .get(format!("http://{}/api/v1/agents", server.addr))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = agents["agents"]
        .as_array()
        .unwrap_or_else(|| panic!("no agents in {agents}"))
        .iter()
        .map(|agent| agent["id"].as_str().unwrap())
        .collect();
    // The imported groups kept the demo from seeding: only the imported agent.
    assert_eq!(ids, ["lt-agent-1"], "{agents}");
    let agent = &agents["agents"][0];
    assert_eq!(agent["display_name"], "Load agent 1", "{agent}");
    assert_eq!(agent["capacity"]["limits"]["web"], 20, "{agent}");

    let token = process_token(&data_dir, "lt-agent-1", Role::Agent);
    let url = format!("ws://{}/ws/agent?token={token}", server.addr);
    let mut desk = Client::connect(&url).await;
    let welcome = desk.hello(json!({})).await;
    assert_eq!(welcome["agent"]["id"], "lt-agent-1", "{welcome}");
    assert_eq!(welcome["agent"]["groups"], json!(["default"]), "{welcome}");
    let presence = desk
        .request(json!({"type": "presence", "state": "available"}))
        .await;
    assert_eq!(presence["presence"]["state"], "available", "{presence}");
}

#[test]
fn an_invalid_import_writes_nothing_and_names_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let env = [("SWITCHBOARD_STORE_DATA_DIR", data_dir.to_str().unwrap())];
    let bad = IMPORT
        .replace(r#"role = "junior""#, r#"role = "boss""#)
        .replace(
            r#"capacity = { web = 20, app = 20 }"#,
            r#"capacity = { web = 0, app = 20 }"#,
        )
        .replace("phone-secret-1", "short")
        + "\n[[agent]]\nid = \"lt-agent-2\"\ngroups = [\"nowhere\"]\n";
    let cases: [(&str, &str, &[&str]); 3] = [
        (
            "bad.toml",
            bad.as_str(),
            &[
                "agent[0].role: must be junior, expert or supervisor, not `boss`",
                "agent[0].capacity.web: must be 1 to 65535, not 0",
                "agent[0].sip_password: must be at least 8 characters",
                "agent[1].groups[0]: unknown group `nowhere`",
                "nothing was written",
            ],
        ),
        (
            "typo.toml",
            "[[agent]]\nid = \"x\"\nrol = \"junior\"\n",
            &["agent[0].rol", "unknown field `rol`", "line 3"],
        ),
        (
            "bad.json",
            r#"{"customer":[{"id":"c1","identities":["fax:1"]}]}"#,
            &["customer[0].identities[0]: unknown channel `fax`"],
        ),
    ];
    for (name, text, expected) in cases {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        let (ok, stdout, stderr) = switchboard(&["import", file.to_str().unwrap()], &env);
        assert!(!ok, "{name} should fail: {stdout}");
        for needle in expected {
            assert!(
                stderr.contains(needle),
                "{name}: {needle:?} not in {stderr}"
            );
        }
    }
    // Nothing was written: the store holds no group, agent or customer.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let db = data_dir.join("switchboard.db");
    runtime.block_on(async {
        use store::Store;
        let store = store::SqliteStore::open(&db).unwrap();
        assert_eq!(store.list_groups().await.unwrap(), vec![]);
        assert_eq!(store.list_agents().await.unwrap(), vec![]);
        let customer = engine::ids::CustomerId::new("c1");
        assert_eq!(store.get_customer(&customer).await.unwrap(), None);
    });
}

#[test]
fn version_names_the_binary_and_the_commit() {
    let git = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    let commit = match git {
        Ok(output) if output.status.success() => {
            String::from_utf8(output.stdout).unwrap().trim().to_owned()
        }
        // Built from a source tarball or without git.
        _ => "unknown".to_owned(),
    };
    let (ok, stdout, stderr) = switchboard(&["--version"], &[]);
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout,
        format!("switchboard {} ({commit})\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn help_lists_the_roles_the_log_settings_and_the_redaction() {
    let cases: [(&[&str], &[&str]); 3] = [
        (
            &["--help"],
            &["RUST_LOG", "--log-format <LOG_FORMAT>", "stderr", "stdout"],
        ),
        (
            &["token", "--help"],
            &["--role <ROLE>", "customer", "agent", "supervisor", "admin"],
        ),
        (&["check-config", "--help"], &["\"<redacted>\""]),
    ];
    for (args, expected) in cases {
        let (ok, stdout, stderr) = switchboard(args, &[]);
        assert!(ok, "{args:?}: {stderr}");
        for needle in expected {
            assert!(
                stdout.contains(needle),
                "{args:?}: {needle:?} not in {stdout}"
            );
        }
    }
    let (ok, _, stderr) = switchboard(&["--log-format", "xml", "check-config"], &[]);
    assert!(
        !ok && stderr.contains("[possible values: text, json]"),
        "{stderr}"
    );
}

const AUTH_SECRET: &str = "auth-secret-0123456789-0123456789";
const SCYLLA_PASSWORD: &str = "scylla-password-0123456789";
const WEBHOOK_SECRET: &str = "webhook-secret-0123456789";
/// Webhook URLs of some services carry their key in the path or the query.
const URL_TOKEN: &str = "url-token-0123456789";

/// A configuration file with every kind of secret set; the webhook goes to
/// `port` (nothing listens there: deliveries fail and are logged).
fn config_with_secrets(dir: &std::path::Path, port: u16) -> std::path::PathBuf {
    let file = dir.join("switchboard.toml");
    let text = format!(
        "[auth]\nsecret = \"{AUTH_SECRET}\"\n\n[webhooks]\ninitial_backoff_ms = 50\npoll_ms = 50\n\n\
         [[webhooks.endpoints]]\nname = \"crm\"\n\
         url = \"http://127.0.0.1:{port}/hooks/{URL_TOKEN}?key={URL_TOKEN}\"\n\
         secret = \"{WEBHOOK_SECRET}\"\n"
    );
    std::fs::write(&file, text).unwrap();
    file
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in [AUTH_SECRET, SCYLLA_PASSWORD, WEBHOOK_SECRET, URL_TOKEN] {
        assert!(!text.contains(secret), "{what} shows {secret}: {text}");
    }
}

#[test]
fn check_config_and_debug_redact_every_secret() {
    let dir = tempfile::tempdir().unwrap();
    let file = config_with_secrets(dir.path(), 1);
    let env = [("SWITCHBOARD_STORE_SCYLLA_PASSWORD", SCYLLA_PASSWORD)];
    let (ok, stdout, stderr) =
        switchboard(&["--config", file.to_str().unwrap(), "check-config"], &env);
    assert!(ok, "{stderr}");
    assert_no_secret("check-config", &stdout);
    let printed: toml::Table = toml::from_str(&stdout).unwrap();
    assert_eq!(printed["auth"]["secret"].as_str(), Some("<redacted>"));
    assert_eq!(
        printed["store"]["scylla_password"].as_str(),
        Some("<redacted>")
    );
    let endpoint = &printed["webhooks"]["endpoints"][0];
    // The receiver stays recognisable; what may hold a key does not show.
    assert!(
        endpoint["url"]
            .as_str()
            .is_some_and(|url| url.starts_with("http://127.0.0.1:") && url.ends_with("/<redacted>")),
        "{endpoint}"
    );
    assert_eq!(
        endpoint["secret"].as_str(),
        Some("<redacted>"),
        "{endpoint}"
    );
    // Unset secrets print empty, so "not set" stays visible.
    let (ok, stdout, _) = switchboard(&["check-config"], &[]);
    assert!(ok && stdout.contains("secret = \"\""), "{stdout}");

    let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    let config = gateway::Config::load(Some(&file), env).unwrap();
    assert_eq!(config.auth.secret.expose(), AUTH_SECRET);
    assert_eq!(config.store.scylla_password.expose(), SCYLLA_PASSWORD);
    let debug = format!("{config:?}");
    assert_no_secret("Debug of Config", &debug);
    assert!(debug.contains("\"<redacted>\""), "{debug}");
    let mut scylla = config.store.clone();
    scylla.scylla_username = "switchboard".into();
    let options = format!("{:?}", scylla.scylla_options().unwrap());
    assert_no_secret("Debug of ScyllaOptions", &options);
}

/// A server with every secret configured runs with debug logs as JSON; a
/// webhook delivery fails (and is logged); its stderr holds no secret, and
/// every line of it is a JSON object.
#[tokio::test]
async fn a_server_log_holds_no_secret() {
    use tokio::io::AsyncBufReadExt;
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on: the delivery is refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let file = config_with_secrets(dir.path(), port);
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["--config", file.to_str().unwrap(), "--log-format", "json"])
        .env("SWITCHBOARD_SERVER_LISTEN", "127.0.0.1:0")
        .env("SWITCHBOARD_SERVER_ADMIN_LISTEN", "127.0.0.1:0")
        .env("SWITCHBOARD_STORE_DATA_DIR", dir.path())
        .env("SWITCHBOARD_STORE_SCYLLA_PASSWORD", SCYLLA_PASSWORD)
        .env("RUST_LOG", "debug")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stderr = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let (lines_tx, mut lines_rx) = tokio::sync::mpsc::unbounded_channel();
    let stderr_reader = tokio::spawn(async move {
        let mut all = Vec::new();
        while let Ok(Some(line)) = stderr.next_line().await {
            // The test may have stopped listening; `all` keeps the line.
            let _ = lines_tx.send(line.clone());
            all.push(line);
        }
        all
    });
    let addr = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = stdout.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix("switchboard is running on http://") {
                return rest.trim().to_owned();
            }
        }
        panic!("switchboard exited before printing its address");
    })
    .await
    .expect("switchboard prints its address within 30 s");
    tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });

    // A ticket: its `ticket.created` webhook is tried and fails.
    let token = gateway::auth::TokenSigner::new(AUTH_SECRET).mint(&gateway::auth::Claims {
        sub: "cust-003".into(),
        role: Role::Customer,
        exp: gateway::auth::unix_now() + 3600,
    });
    let created = reqwest::Client::new()
        .post(format!("http://{addr}/api/v1/tickets"))
        .bearer_auth(&token)
        .json(&json!({"subject": "Refund not received"}))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success(), "{}", created.status());
    tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(line) = lines_rx.recv().await {
            if line.contains("webhook delivery failed") {
                return;
            }
        }
        panic!("switchboard exited before a webhook delivery failed");
    })
    .await
    .expect("a failed webhook delivery is logged within 15 s");

    let pid = child.id().unwrap().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("exits within 15 s")
        .unwrap();
    assert!(status.success(), "{status}");
    let log = stderr_reader.await.unwrap();
    assert!(log.len() > 3, "{log:?}");
    assert!(
        log.iter().any(|line| line.contains("switchboard stopped")),
        "{log:?}"
    );
    for line in &log {
        let object: Value = serde_json::from_str(line)
            .unwrap_or_else(|err| panic!("not a JSON log line ({err}): {line}"));
        assert!(
            object["level"].is_string() && object["fields"].is_object(),
            "{line}"
        );
    }
    assert_no_secret("the server's log", &log.join("\n"));
}
