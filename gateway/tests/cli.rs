//! The `switchboard` command line: configuration errors name the key,
//! `token` refuses what it cannot mint, and `import` provisions agents the
//! server then serves, or writes nothing and names the entry at fault.

mod common;

use std::process::Command;

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
        !ok && stderr.contains("--role must be customer, agent, supervisor or admin"),
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
    // Importing again is an upsert: same counts, still fine.
    let (ok, stdout, stderr) = switchboard(&["import", file.to_str().unwrap()], &env);
    assert!(ok && stdout.contains("1 agent(s)"), "{stdout}{stderr}");

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
        + "\n[[agent]]\nid = \"lt-agent-2\"\ngroups = [\"nowhere\"]\n";
    let cases: [(&str, &str, &[&str]); 3] = [
        (
            "bad.toml",
            bad.as_str(),
            &[
                "agent[0].role: must be junior, expert or supervisor, not `boss`",
                "agent[0].capacity.web: must be 1 to 65535, not 0",
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
        use engine::store::Store;
        let store = engine::store::SqliteStore::open(&db).unwrap();
        assert_eq!(store.list_groups().await.unwrap(), vec![]);
        assert_eq!(store.list_agents().await.unwrap(), vec![]);
        let customer = engine::ids::CustomerId::new("c1");
        assert_eq!(store.get_customer(&customer).await.unwrap(), None);
    });
}
