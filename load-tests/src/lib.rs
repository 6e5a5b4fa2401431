//! switchboard's load generator. It speaks only the public protocol
//! (PROTOCOL.md: WebSocket frames, REST, tokens) and knows nothing of the
//! engine. `loadgen run` starts the server under test, spreads a scenario
//! over several generator processes and 127.0.0.x source addresses, and
//! writes a summary table, a JSON file and an HTML report; `--baseline`
//! runs the same scenario against a bare relay for switchboard / relay ratios.

#![forbid(unsafe_code)]

pub mod agent;
pub mod channel;
pub mod customer;
pub mod flows;
pub mod html;
pub mod idle;
pub mod phone;
pub mod progress;
pub mod relay;
pub mod report;
pub mod rng;
pub mod run;
pub mod scenario;
pub mod search;
pub mod sip;
pub mod stats;
pub mod target;
pub mod wire;
pub mod worker;

/// Now as `YYYY-MM-DDTHH:MM:SSZ` (UTC).
pub fn now_rfc3339() -> String {
    let secs = wire::now_ns() / 1_000_000_000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month, day) (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    #[test]
    fn civil_dates() {
        assert_eq!(super::civil_from_days(0), (1970, 1, 1));
        assert_eq!(super::civil_from_days(20_781), (2026, 11, 24));
        assert_eq!(super::civil_from_days(19_782), (2024, 2, 29));
    }
}
