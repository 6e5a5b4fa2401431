//! What the server says about itself during a phone run: CPU time from
//! /proc/<pid>/stat and the RTP series of its `/metrics` (the admin
//! listener; docs/metrics.md).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use anyhow::{Context, Result};

/// `utime + stime` of `pid`, in clock ticks.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields count from after its `)`.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of the line are 12 and 13 after the name and state.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 when it cannot say).
pub fn ticks_per_sec() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}

/// The host's UDP datagrams dropped for a full receive buffer
/// (`RcvbufErrors` in /proc/net/snmp): loss that is nobody's code but a
/// socket read too late, ours or the server's.
pub fn udp_rcvbuf_errors() -> Option<u64> {
    let snmp = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut udp = snmp.lines().filter(|line| line.starts_with("Udp:"));
    let names: Vec<&str> = udp.next()?.split_whitespace().collect();
    let values: Vec<&str> = udp.next()?.split_whitespace().collect();
    let column = names.iter().position(|name| *name == "RcvbufErrors")?;
    values.get(column)?.parse().ok()
}

/// Every sample of the exposition, `name{labels}` → value.
pub type Samples = BTreeMap<String, f64>;

/// Scrapes `http://<admin>/metrics`.
pub async fn scrape(admin: SocketAddr) -> Result<Samples> {
    let text = reqwest::get(format!("http://{admin}/metrics"))
        .await
        .context("failed to scrape /metrics")?
        .text()
        .await?;
    Ok(parse(&text))
}

fn parse(text: &str) -> Samples {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (key, value) = line.rsplit_once(' ')?;
            Some((key.trim().to_string(), value.trim().parse().ok()?))
        })
        .collect()
}

/// `after − before` of every series starting with `prefix`.
pub fn deltas(before: &Samples, after: &Samples, prefix: &str) -> Samples {
    after
        .iter()
        .filter(|(key, _)| key.starts_with(prefix))
        .map(|(key, value)| (key.clone(), value - before.get(key).copied().unwrap_or(0.0)))
        .collect()
}

/// The upper bound (ms) of the histogram bucket holding quantile `q` of
/// the observations in `deltas` of `name` (`le` buckets); `None` without
/// observations.
pub fn bucket_quantile_ms(deltas: &Samples, name: &str, q: f64) -> Option<f64> {
    let bucket_prefix = format!("{name}_bucket{{");
    let mut buckets: Vec<(f64, f64)> = deltas
        .iter()
        .filter_map(|(key, count)| {
            let labels = key.strip_prefix(&bucket_prefix)?;
            let le = labels.split("le=\"").nth(1)?.split('"').next()?;
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((bound, *count))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    buckets
        .iter()
        .find(|(_, count)| *count >= q * total)
        .map(|(bound, _)| bound * 1_000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_cpu_time_and_the_udp_counters_are_readable() {
        assert!(cpu_ticks(std::process::id()).is_some());
        assert!(udp_rcvbuf_errors().is_some());
    }

    #[test]
    fn quantiles_come_from_bucket_deltas() {
        let before = parse(
            "# TYPE h histogram\nh_bucket{le=\"0.0001\"} 10\nh_bucket{le=\"0.001\"} 10\nh_bucket{le=\"+Inf\"} 10\n",
        );
        let after = parse(
            "h_bucket{le=\"0.0001\"} 990\nh_bucket{le=\"0.001\"} 1009\nh_bucket{le=\"+Inf\"} 1010\n\
             c{outcome=\"relayed\"} 5\n",
        );
        let deltas = deltas(&before, &after, "h");
        let close =
            |got: Option<f64>, expected: f64| got.is_some_and(|v| (v - expected).abs() < 1e-9);
        assert!(close(bucket_quantile_ms(&deltas, "h", 0.5), 0.1));
        assert!(close(bucket_quantile_ms(&deltas, "h", 0.99), 1.0));
        assert_eq!(bucket_quantile_ms(&deltas, "h", 1.0), Some(f64::INFINITY));
        assert_eq!(bucket_quantile_ms(&deltas, "nothing", 0.5), None);
    }
}
