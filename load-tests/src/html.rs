//! The HTML report: one self-contained page (inline SVG, no scripts, no
//! network) with the summary tables and plots of rate, latency and memory
//! over time, one section per target.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::report::{Point, Report};

const COLORS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];

/// The whole page.
pub fn page(reports: &[Report], ratios: &BTreeMap<String, f64>) -> String {
    let title = reports
        .first()
        .map(|r| format!("loadgen: {} ({})", r.scenario, r.started_at))
        .unwrap_or_else(|| "loadgen".into());
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
         <style>body{{font:14px system-ui,sans-serif;margin:2em;max-width:1100px}}\
         table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}\
         th:first-child,td:first-child{{text-align:left}}.fail{{color:#b00;font-weight:bold}}.ok{{color:#070}}\
         svg{{background:#fafafa;border:1px solid #ddd;margin:.5em 0}}</style></head><body>\n<h1>{title}</h1>\n",
        title = escape(&title)
    );
    if let Some(first) = reports.first() {
        let _ = writeln!(
            out,
            "<p>Command: <code>{}</code><br>Machine: {}</p>",
            escape(&first.command),
            escape(&first.machine)
        );
    }
    if !ratios.is_empty() {
        out.push_str(
            "<h2>switchboard / relay</h2><table><tr><th>measure</th><th>ratio</th></tr>\n",
        );
        for (name, ratio) in ratios {
            let _ = writeln!(out, "<tr><td>{}</td><td>{ratio:.3}</td></tr>", escape(name));
        }
        out.push_str("</table>\n");
    }
    for report in reports {
        section(&mut out, report);
    }
    out.push_str("</body></html>\n");
    out
}

fn section(out: &mut String, report: &Report) {
    let verdict = if report.passed {
        "<span class=ok>passed</span>"
    } else {
        "<span class=fail>FAILED</span>"
    };
    let _ = writeln!(
        out,
        "<h2>{} on {}: {verdict}</h2><p>{} generator processes, {} source addresses, {:.1} s measured, {:.1} durable messages/s</p>",
        report.scenario,
        report.target,
        report.processes,
        report.sources,
        report.measured_secs,
        report.durable_messages_per_sec
    );
    out.push_str("<table><tr><th>latency (ms)</th><th>count</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr>\n");
    for (name, p) in report.latency.iter().filter(|(_, p)| p.count > 0) {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td></tr>",
            escape(name),
            p.count,
            p.p50_ms,
            p.p90_ms,
            p.p99_ms,
            p.p999_ms,
            p.max_ms
        );
    }
    out.push_str(
        "</table>\n<table><tr><th>check</th><th>expected</th><th>got</th><th></th></tr>\n",
    );
    for check in &report.checks {
        let mark = if check.ok {
            "<span class=ok>ok</span>"
        } else {
            "<span class=fail>FAIL</span>"
        };
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{mark}</td></tr>",
            escape(&check.name),
            check.expected,
            check.got
        );
    }
    out.push_str("</table>\n");
    let m = &report.memory;
    let mib = |kib: Option<u64>| {
        kib.map(|k| format!("{:.1}", k as f64 / 1024.0))
            .unwrap_or_else(|| "-".into())
    };
    let _ = writeln!(
        out,
        "<table><tr><th>server RSS (MiB)</th><th>start</th><th>at go</th><th>peak</th><th>end</th><th>KiB per session</th></tr>\
         <tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr></table>",
        report.target,
        mib(m.rss_start_kib),
        mib(m.rss_go_kib),
        mib(m.rss_peak_kib),
        mib(m.rss_end_kib),
        m.kib_per_session
            .map(|k| format!("{k:.2} ({} sessions)", m.sessions))
            .unwrap_or_else(|| "-".into())
    );
    if let Some(sl) = &report.service_level {
        let _ = writeln!(
            out,
            "<p>Service level: {:.1} % answered within {} s ({} answered, {} abandoned)</p>",
            sl.level * 100.0,
            sl.threshold_secs,
            sl.answered,
            sl.abandoned
        );
    }
    if !report.figures.is_empty() {
        out.push_str("<table><tr><th>figure</th><th>value</th></tr>\n");
        for (name, value) in &report.figures {
            let _ = writeln!(out, "<tr><td>{}</td><td>{value:.3}</td></tr>", escape(name));
        }
        out.push_str("</table>\n");
    }
    if !report.counters.is_empty() && report.scenario.is_phone() {
        out.push_str("<table><tr><th>counter</th><th>value</th></tr>\n");
        for (name, value) in &report.counters {
            let _ = writeln!(out, "<tr><td>{}</td><td>{value}</td></tr>", escape(name));
        }
        out.push_str("</table>\n");
    }
    if !report.errors.is_empty() {
        out.push_str("<table><tr><th>error</th><th>count</th></tr>\n");
        for (kind, n) in &report.errors {
            let _ = writeln!(out, "<tr><td>{}</td><td>{n}</td></tr>", escape(kind));
        }
        out.push_str("</table>\n");
    }
    let series = &report.series;
    let pick = |f: fn(&Point) -> Option<f64>| -> Vec<(f64, f64)> {
        series
            .iter()
            .filter_map(|p| f(p).map(|v| (p.t, v)))
            .collect()
    };
    out.push_str(&chart(
        "Messages per second",
        "msg/s",
        &[
            ("sent", pick(|p| Some(p.sent_per_sec))),
            ("received", pick(|p| Some(p.received_per_sec))),
        ],
    ));
    out.push_str(&chart(
        "Latency per second (ms)",
        "ms",
        &[
            ("customer→agent p50", pick(|p| p.e2e_p50_ms)),
            ("customer→agent p99", pick(|p| p.e2e_p99_ms)),
            ("round trip p99", pick(|p| p.round_trip_p99_ms)),
            ("ack p99", pick(|p| p.ack_p99_ms)),
        ],
    ));
    out.push_str(&chart(
        "Connections and sessions",
        "count",
        &[
            ("connected", pick(|p| Some(p.connected as f64))),
            ("sessions opened", pick(|p| Some(p.opened as f64))),
        ],
    ));
    out.push_str(&chart(
        "Server memory (MiB)",
        "MiB",
        &[("RSS", pick(|p| p.rss_kib.map(|k| k as f64 / 1024.0)))],
    ));
    let _ = writeln!(
        out,
        "<details><summary>Parameters</summary><pre>{}</pre></details>",
        escape(&toml::to_string(&report.params).unwrap_or_default())
    );
}

/// A line chart of `lines` (x = seconds) as inline SVG; nothing when empty.
pub fn chart(title: &str, unit: &str, lines: &[(&str, Vec<(f64, f64)>)]) -> String {
    let points: Vec<(f64, f64)> = lines.iter().flat_map(|(_, l)| l.iter().copied()).collect();
    if points.is_empty() {
        return String::new();
    }
    let (width, height, left, right, top, bottom) = (900.0, 260.0, 60.0, 170.0, 30.0, 35.0);
    let x_max = points.iter().map(|p| p.0).fold(1.0_f64, f64::max);
    let y_max = nice_ceiling(points.iter().map(|p| p.1).fold(0.0_f64, f64::max));
    let plot_w = width - left - right;
    let plot_h = height - top - bottom;
    let x = |v: f64| left + v / x_max * plot_w;
    let y = |v: f64| top + plot_h - v / y_max * plot_h;
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg role=\"img\" aria-label=\"{t}\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\">\
         <text x=\"{left}\" y=\"18\" font-weight=\"bold\">{t}</text>",
        t = escape(title)
    );
    for step in 0..=4 {
        let value = y_max * f64::from(step) / 4.0;
        let _ = write!(
            svg,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y0}\" y2=\"{y0}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-size=\"11\">{}</text>",
            left + plot_w,
            left - 4.0,
            y(value) + 4.0,
            short_number(value),
            y0 = y(value)
        );
    }
    for step in 0..=5 {
        let value = x_max * f64::from(step) / 5.0;
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"11\">{:.0} s</text>",
            x(value),
            top + plot_h + 16.0,
            value
        );
    }
    let _ = write!(
        svg,
        "<text x=\"12\" y=\"{}\" font-size=\"11\" transform=\"rotate(-90 12 {})\">{}</text>",
        top + plot_h / 2.0,
        top + plot_h / 2.0,
        escape(unit)
    );
    for (idx, (name, line)) in lines.iter().enumerate() {
        if line.is_empty() {
            continue;
        }
        let color = COLORS[idx % COLORS.len()];
        let path: Vec<String> = line
            .iter()
            .map(|&(px, py)| format!("{:.1},{:.1}", x(px), y(py)))
            .collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{}\"/>\
             <rect x=\"{}\" y=\"{}\" width=\"12\" height=\"3\" fill=\"{color}\"/><text x=\"{}\" y=\"{}\" font-size=\"12\">{}</text>",
            path.join(" "),
            left + plot_w + 12.0,
            top + 10.0 + idx as f64 * 18.0,
            left + plot_w + 28.0,
            top + 14.0 + idx as f64 * 18.0,
            escape(name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// 1, 2 or 5 times a power of ten, at least `value`.
fn nice_ceiling(value: f64) -> f64 {
    if value <= 0.0 || !value.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|&candidate| candidate >= value)
        .unwrap_or(10.0 * magnitude)
}

fn short_number(value: f64) -> String {
    if value >= 10_000.0 {
        format!("{:.0}k", value / 1000.0)
    } else if value >= 10.0 || value == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_scales_its_lines_into_the_plot() {
        let svg = chart("Rate", "msg/s", &[("sent", vec![(0.0, 0.0), (10.0, 80.0)])]);
        assert!(svg.starts_with("<svg"), "{svg}");
        // y axis up to 100 (the nice ceiling of 80); the last point sits at x = 60 + 670.
        assert!(svg.contains(">100<"), "{svg}");
        assert!(svg.contains("730.0,"), "{svg}");
        assert!(chart("Empty", "ms", &[("none", vec![])]).is_empty());
    }

    #[test]
    fn nice_ceilings() {
        for (value, expected) in [
            (0.0, 1.0),
            (0.3, 0.5),
            (7.0, 10.0),
            (120.0, 200.0),
            (5000.0, 5000.0),
        ] {
            assert!(
                (nice_ceiling(value) - expected).abs() < 1e-9,
                "{value} → {}",
                nice_ceiling(value)
            );
        }
        assert_eq!(escape("<a&\"b\">"), "&lt;a&amp;&quot;b&quot;&gt;");
    }
}
