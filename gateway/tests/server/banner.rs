//! What `switchboard` prints at start when the demo is off: the public
//! address and the admin (metrics) address, both usable when configured
//! with port 0.

use std::time::Duration;

use tokio::io::AsyncBufReadExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_demo_the_banner_names_the_admin_address() {
    let dir = tempfile::tempdir().unwrap();
    // An empty store needs the groups the built-in rules name.
    let groups = dir.path().join("groups.toml");
    std::fs::write(
        &groups,
        "[[group]]\nid = \"gold_service\"\n[[group]]\nid = \"phone_support\"\n[[group]]\nid = \"default\"\n",
    )
    .unwrap();
    let imported = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["import", groups.to_str().unwrap()])
        .env("SWITCHBOARD_STORE_DATA_DIR", dir.path())
        .env("SWITCHBOARD_DEMO_ENABLED", "false")
        .output()
        .unwrap();
    assert!(imported.status.success(), "{imported:?}");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .env("SWITCHBOARD_SERVER_LISTEN", "127.0.0.1:0")
        .env("SWITCHBOARD_SERVER_ADMIN_LISTEN", "127.0.0.1:0")
        .env("SWITCHBOARD_STORE_DATA_DIR", dir.path())
        .env("SWITCHBOARD_DEMO_ENABLED", "false")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("switchboard starts");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let (public, admin) = tokio::time::timeout(Duration::from_secs(30), async {
        let mut public = None;
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix("switchboard is running on ") {
                public = Some(rest.trim().to_string());
            }
            if let Some(rest) = line.trim().strip_prefix("metrics (admin)") {
                return (
                    public.expect("the public address comes first"),
                    rest.trim().to_string(),
                );
            }
        }
        panic!("switchboard exited without naming its admin address");
    })
    .await
    .expect("the banner within 30 s");
    assert!(
        admin.starts_with("http://127.0.0.1:") && admin.ends_with("/metrics"),
        "{admin}"
    );
    assert!(!admin.contains(":0/"), "the real port, not 0: {admin}");
    let metrics = reqwest::get(&admin).await.unwrap();
    assert_eq!(metrics.status(), 200);
    assert!(metrics.text().await.unwrap().contains("switchboard_"));
    let health = reqwest::get(format!("{public}/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    child.start_kill().unwrap();
}
