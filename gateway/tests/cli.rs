//! The `switchboard` command line: configuration errors name the key, and
//! `token` refuses what it cannot mint.

use std::process::Command;

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
