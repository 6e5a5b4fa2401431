//! A real Prometheus for tests: a process scraping a server's admin
//! listener every second, queries, and the dashboards' and alerts' own
//! expressions read from grafana/.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

/// Seeds the demo data into `dir`'s SQLite file with every group's
/// service-level and short-abandon thresholds set (seconds), so that an SLA
/// scenario takes seconds.
pub async fn seed_demo_with_thresholds(
    dir: &std::path::Path,
    threshold_secs: u32,
    short_abandon_secs: u32,
) {
    let store = store::SqliteStore::open(dir.join("switchboard.db")).unwrap();
    let (agents, mut groups, customers) = gateway::demo::data("switchboard");
    for group in &mut groups {
        group.sla_threshold_secs = threshold_secs;
        group.short_abandon_secs = short_abandon_secs;
    }
    actors::Switchboard::seed(&store, agents, groups, customers)
        .await
        .unwrap();
}

pub const GRAFANA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../grafana");

/// A Prometheus process scraping `target` every second.
pub struct Prometheus {
    /// Killed when dropped.
    _child: tokio::process::Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

pub async fn start_prometheus(target: std::net::SocketAddr) -> Prometheus {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: switchboard\n    static_configs:\n      - targets: [\"{target}\"]\n"
        ),
    )
    .unwrap();
    // Below the ephemeral range, like the cluster tests' ports: a port
    // `:0` handed out and released may come back as another socket's.
    let port = super::cluster::free_port();
    let child = tokio::process::Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("prometheus is installed (scripts/test installs it)");
    Prometheus {
        _child: child,
        url: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    }
}

impl Prometheus {
    /// Evaluates `query` now; panics on an error status.
    pub async fn query(&self, query: &str) -> Vec<Value> {
        let response: Value = reqwest::Client::new()
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", query)])
            .send()
            .await
            .unwrap_or_else(|err| panic!("{query}: {err}"))
            .json()
            .await
            .unwrap();
        assert_eq!(response["status"], "success", "{query}: {response}");
        response["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// `query`'s series, or `None` while Prometheus is not up or has no answer.
    pub async fn try_query(&self, query: &str) -> Option<Vec<Value>> {
        let response = reqwest::Client::new()
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", query)])
            .timeout(Duration::from_secs(1))
            .send()
            .await
            .ok()?;
        let body: Value = response.json().await.ok()?;
        body["data"]["result"].as_array().cloned()
    }

    /// The single value of `query`.
    pub async fn value(&self, query: &str) -> f64 {
        let result = self.query(query).await;
        assert_eq!(result.len(), 1, "{query}: {result:?}");
        result[0]["value"][1].as_str().unwrap().parse().unwrap()
    }

    /// Waits until `query` returns at least one series.
    pub async fn wait_for_any(&self, query: &str) {
        for _ in 0..300 {
            if let Some(result) = self.try_query(query).await
                && !result.is_empty()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{query} never returned a series");
    }

    /// The panels of `panels` whose query returns no series: "No data" in Grafana.
    pub async fn panels_without_data(&self, panels: &[(String, String, String)]) -> Vec<String> {
        let mut empty = Vec::new();
        for (file, title, expr) in panels {
            if self.query(expr).await.is_empty() {
                empty.push(format!("{file} / {title}: {expr}"));
            }
        }
        empty
    }

    /// The panels of `panels` with a series whose value is not a number
    /// (a ratio of zeros): an empty graph in Grafana.
    pub async fn panels_with_nan(&self, panels: &[(String, String, String)]) -> Vec<String> {
        let mut nan = Vec::new();
        for (file, title, expr) in panels {
            let result = self.query(expr).await;
            let not_a_number = result.iter().any(|series| {
                series["value"][1]
                    .as_str()
                    .and_then(|value| value.parse::<f64>().ok())
                    .is_none_or(f64::is_nan)
            });
            if not_a_number {
                nan.push(format!("{file} / {title}: {expr}"));
            }
        }
        nan
    }

    /// Waits until `query` has the value `expected` (Prometheus scrapes every second).
    pub async fn wait_for(&self, query: &str, expected: f64) {
        for _ in 0..300 {
            if let Some(result) = self.try_query(query).await
                && result.len() == 1
                && result[0]["value"][1]
                    .as_str()
                    .and_then(|v| v.parse::<f64>().ok())
                    == Some(expected)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{query} never reached {expected}");
    }
}

/// Every `expr` of every panel, with template variables filled in.
pub fn panel_queries() -> Vec<(String, String, String)> {
    let mut queries = Vec::new();
    for file in ["sla-overview.json", "engine-internals.json"] {
        let text = std::fs::read_to_string(format!("{GRAFANA}/dashboards/{file}")).unwrap();
        let dashboard: Value = serde_json::from_str(&text).unwrap();
        for panel in dashboard["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                let expr = target["expr"]
                    .as_str()
                    .unwrap()
                    .replace("$group", ".*")
                    .replace("$channel", ".*")
                    .replace("$__rate_interval", "30s");
                queries.push((
                    file.to_string(),
                    panel["title"].as_str().unwrap().to_string(),
                    expr,
                ));
            }
        }
    }
    queries
}

/// The `expr` of alert `name` in grafana/alerts.yml (a `|` block).
pub fn alert_expr(name: &str) -> String {
    let text = std::fs::read_to_string(format!("{GRAFANA}/alerts.yml")).unwrap();
    let mut lines = text
        .lines()
        .skip_while(|line| !line.contains(&format!("alert: {name}")))
        .skip_while(|line| !line.trim_start().starts_with("expr:"));
    let first = lines.next().expect("the alert has an expr");
    let inline = first.trim_start().trim_start_matches("expr:").trim();
    if inline != "|" {
        return inline.to_string();
    }
    lines
        .take_while(|line| {
            !line.trim_start().starts_with("for:") && !line.trim_start().starts_with("labels:")
        })
        .collect::<Vec<_>>()
        .join("\n")
}
