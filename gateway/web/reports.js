// The supervisor's historical reports (docs/reports.md), read from the store
// through GET /api/v1/reports/{intervals,agents,routes}: one day (a local
// calendar day) of their groups, in 15, 30 or 60-minute intervals. Charts
// are drawn here in SVG (no external scripts): the service level of each
// interval against its target, the volume by channel, and abandonment;
// then the agents' and the routing steps' tables, and CSV downloads of
// each report.

import { clear, h } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const CHANNEL_COLOURS = ["#2f6fde", "#2aa876", "#e0a100", "#c2410c", "#7c3aed", "#0f766e", "#be185d"];
const WIDTH = 640;
const HEIGHT = 180;
const PAD = { left: 40, right: 8, top: 10, bottom: 22 };

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  el.append(...children);
  return el;
}

// Local midnight of the <input type=date> value, in ms.
function dayStart(value) {
  const [year, month, day] = value.split("-").map(Number);
  return new Date(year, month - 1, day).getTime();
}

function today() {
  const now = new Date();
  const pad = (n) => String(n).padStart(2, "0");
  return `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}`;
}

function clock(ms) {
  const d = new Date(ms);
  return `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
}

function secs(ms) {
  return ms === null || ms === undefined ? "–" : `${Math.round(ms / 100) / 10} s`;
}

function pct(fraction) {
  return fraction === null || fraction === undefined ? "–" : `${Math.round(fraction * 1000) / 10}%`;
}

// A time spent: minutes below an hour, else hours with a decimal.
function spent(ms) {
  return ms < 3600 * 1000 ? `${Math.round(ms / 60000)} min` : `${Math.round(ms / 360000) / 10} h`;
}

// A legend's colour sample (SVG: the page's style policy allows no inline styles).
function swatch(colour) {
  return svg("svg", { class: "swatch", width: 10, height: 10, viewBox: "0 0 10 10", "aria-hidden": "true" },
    svg("rect", { width: 10, height: 10, rx: 2, fill: colour }));
}

// The frame of a chart over the day's intervals: axes, hour ticks, and a
// y scale from 0 to `max` with `ticks` labels.
function frame(intervals, max, ticks, label, format) {
  const n = intervals.length;
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const x = (i) => PAD.left + (i * plotW) / Math.max(1, n);
  const y = (value) => PAD.top + plotH - (max > 0 ? (value / max) * plotH : 0);
  const chart = svg("svg", { class: "report-chart", viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-label": label },
    svg("title", {}, label));
  for (let k = 0; k <= ticks; k += 1) {
    const value = (max * k) / ticks;
    chart.append(
      svg("line", { class: "grid", x1: PAD.left, x2: WIDTH - PAD.right, y1: y(value), y2: y(value) }),
      svg("text", { class: "axis", x: PAD.left - 4, y: y(value) + 3, "text-anchor": "end" }, format(value)));
  }
  const every = Math.max(1, Math.round(n / 8));
  intervals.forEach((start, i) => {
    if (i % every === 0) {
      chart.append(svg("text", { class: "axis", x: x(i), y: HEIGHT - 6, "text-anchor": "start" }, clock(start)));
    }
  });
  return { chart, x, y, slot: plotW / Math.max(1, n) };
}

export class Reports {
  constructor(ctx, root) {
    this.ctx = ctx;
    this.root = root;
    this.build();
  }

  build() {
    const t = this.ctx.t;
    const field = (id, label, control) => h("label", { class: "control-field", for: id },
      h("span", { dataset: { i18n: label } }, t(label)), control);
    this.day = h("input", { id: "report-day", type: "date", value: today() });
    this.interval = h("select", { id: "report-interval" },
      [15, 30, 60].map((minutes) => h("option", { value: String(minutes), selected: minutes === 60 }, t("report_minutes", { n: minutes }))));
    this.group = h("select", { id: "report-group" }, h("option", { value: "" }, t("report_all_groups")));
    this.status = h("p", { id: "report-status", class: "muted", role: "status", "aria-live": "polite" });
    this.body = h("div", { id: "report-body" });
    const form = h("form", { id: "report-form", class: "control-form", onsubmit: (event) => { event.preventDefault(); this.load(); } },
      field("report-day", "report_day", this.day),
      field("report-interval", "report_interval", this.interval),
      field("report-group", "group", this.group),
      h("button", { id: "report-show", type: "submit" }, t("report_show")),
      ...["intervals", "agents", "routes", "usage"].map((report) =>
        h("button", { type: "button", class: "secondary", dataset: { csv: report }, onclick: () => this.download(report) }, t(`report_csv_${report}`))));
    this.root.append(form, this.status, this.body);
  }

  // The wallboard's groups fill the group picker (once).
  setGroups(groups) {
    if (this.group.options.length > 1) return;
    for (const group of groups) this.group.append(h("option", { value: group.id }, group.display_name));
  }

  query(report) {
    const day = this.day.value || today();
    const from = dayStart(day);
    // The next local midnight: a day of 23 or 25 hours when the clocks change.
    const [year, month, date] = day.split("-").map(Number);
    const to = new Date(year, month - 1, date + 1).getTime();
    const params = new URLSearchParams({ from: String(from), to: String(to) });
    if (report === "intervals") params.set("interval", this.interval.value);
    if (this.group.value) params.set("group", this.group.value);
    return `/reports/${report}?${params}`;
  }

  async load() {
    const t = this.ctx.t;
    this.status.textContent = t("report_loading");
    try {
      const [intervals, agents, routes, usage] = await Promise.all(
        ["intervals", "agents", "routes", "usage"].map((report) => this.ctx.api("GET", this.query(report))));
      this.render(intervals, agents, routes, usage);
      this.status.textContent = t("report_ready", { n: intervals.rows.filter((row) => row.channel === null).reduce((sum, row) => sum + row.offered, 0) });
    } catch (err) {
      this.status.textContent = t("error", { message: err.message });
    }
  }

  // The CSV of a report, fetched with the page's token and saved as a file.
  async download(report) {
    const t = this.ctx.t;
    try {
      const response = await fetch(`/api/v1${this.query(report)}&format=csv`, { headers: { Authorization: `Bearer ${this.ctx.token}` } });
      if (!response.ok) throw new Error(`${response.status} ${await response.text()}`);
      const blob = await response.blob();
      const link = h("a", { href: URL.createObjectURL(blob), download: `${report}-${this.day.value}.csv` });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 1000);
      this.status.textContent = t("report_downloaded", { report: t(`report_csv_${report}`) });
    } catch (err) {
      this.status.textContent = t("error", { message: err.message });
    }
  }

  render(intervals, agents, routes, usage) {
    const t = this.ctx.t;
    const root = clear(this.body);
    const totals = intervals.rows.filter((row) => row.channel === null);
    const starts = [...new Set(totals.map((row) => row.start))].sort((a, b) => a - b);
    const groups = [...new Set(totals.map((row) => row.group))];
    if (!starts.length) {
      root.append(h("p", { id: "report-empty", class: "muted" }, t("report_empty")));
    } else {
      root.append(
        h("div", { class: "report-charts" },
          this.serviceLevelChart(totals, starts, groups),
          this.volumeChart(intervals.rows.filter((row) => row.channel !== null), starts),
          this.abandonChart(totals, starts)));
    }
    root.append(this.agentTable(agents.rows), this.routeTable(routes.rows), this.usageTable(usage.rows));
  }

  // Desktop usage per role layout: what each layout's agents used, and how
  // soon they first replied after an offer.
  usageTable(rows) {
    const t = this.ctx.t;
    const panels = (usage) => Object.entries(usage)
      .filter(([key]) => key.startsWith("panel_used:"))
      .sort((a, b) => b[1] - a[1])
      .map(([key, n]) => `${key.slice("panel_used:".length)} ${n}`)
      .join(", ") || "–";
    const count = (usage, key) => String(usage[key] || 0);
    const head = ["report_layout", "report_agents_n", "report_answered", "report_offer_to_reply", "report_suggestions", "report_kb_inserted", "report_transfers", "report_tickets", "report_panels"]
      .map((key) => h("th", { scope: "col" }, t(key)));
    return h("table", { id: "report-usage", class: "board" },
      h("caption", {}, t("report_usage")),
      h("thead", {}, h("tr", {}, head)),
      h("tbody", {}, rows.map((row) => h("tr", { dataset: { layout: row.layout } },
        h("th", { scope: "row" }, t(`role_${row.layout}`)),
        h("td", {}, String(row.agents)),
        h("td", {}, String(row.answered)),
        h("td", {}, secs(row.offer_to_first_reply_mean_ms)),
        h("td", {}, count(row.usage, "suggestion_inserted")),
        h("td", {}, count(row.usage, "kb_article_inserted")),
        h("td", {}, count(row.usage, "transfer")),
        h("td", {}, count(row.usage, "ticket_created")),
        h("td", {}, panels(row.usage))))));
  }

  // Each group's service level per interval (a line; no point where nothing
  // was answered or abandoned) against its target (dashed).
  serviceLevelChart(totals, starts, groups) {
    const t = this.ctx.t;
    const { chart, x, y, slot } = frame(starts, 100, 4, t("report_sl_chart"), (v) => `${Math.round(v)}%`);
    chart.id = "report-sl-chart";
    const legend = h("ul", { class: "report-legend" });
    groups.forEach((group, g) => {
      const colour = CHANNEL_COLOURS[g % CHANNEL_COLOURS.length];
      const rows = totals.filter((row) => row.group === group);
      const target = rows.length ? rows[0].target_pct : 80;
      chart.append(svg("line", { class: "target", x1: PAD.left, x2: WIDTH - PAD.right, y1: y(target), y2: y(target), stroke: colour }));
      let run = [];
      const flush = () => {
        if (run.length === 1) chart.append(svg("circle", { class: "sl-point", cx: run[0][0], cy: run[0][1], r: 2.5, fill: colour }));
        if (run.length > 1) chart.append(svg("polyline", { class: "sl-line", points: run.map((p) => p.join(",")).join(" "), stroke: colour }));
        run = [];
      };
      starts.forEach((start, i) => {
        const row = rows.find((r) => r.start === start);
        if (!row || row.service_level === null) flush();
        else run.push([(x(i) + slot / 2).toFixed(1), y(row.service_level * 100).toFixed(1)]);
      });
      flush();
      legend.append(h("li", {}, swatch(colour), ` ${group} · ${t("report_target", { pct: target })}`));
    });
    return h("figure", { class: "report-figure" }, h("figcaption", {}, t("report_sl_chart")), chart, legend);
  }

  // Contacts offered per interval, stacked by channel.
  volumeChart(channelRows, starts) {
    const t = this.ctx.t;
    const channels = [...new Set(channelRows.map((row) => row.channel))].sort();
    const perSlot = starts.map((start) => channelRows.filter((row) => row.start === start).reduce((sum, row) => sum + row.offered, 0));
    const max = Math.max(1, ...perSlot);
    const { chart, x, y, slot } = frame(starts, max, Math.min(4, max), t("report_volume_chart"), (v) => String(Math.round(v)));
    chart.id = "report-volume-chart";
    starts.forEach((start, i) => {
      let base = 0;
      channels.forEach((channel, c) => {
        const offered = channelRows.filter((row) => row.start === start && row.channel === channel).reduce((sum, row) => sum + row.offered, 0);
        if (!offered) return;
        chart.append(svg("rect", {
          class: "bar", x: (x(i) + 1).toFixed(1), width: Math.max(1, slot - 2).toFixed(1),
          y: y(base + offered).toFixed(1), height: (y(base) - y(base + offered)).toFixed(1),
          fill: CHANNEL_COLOURS[c % CHANNEL_COLOURS.length], "data-channel": channel, "data-offered": offered,
        }, svg("title", {}, `${clock(start)} ${channel}: ${offered}`)));
        base += offered;
      });
    });
    const legend = h("ul", { class: "report-legend" }, channels.map((channel, c) =>
      h("li", {}, swatch(CHANNEL_COLOURS[c % CHANNEL_COLOURS.length]), ` ${channel}`)));
    return h("figure", { class: "report-figure" }, h("figcaption", {}, t("report_volume_chart")), chart, legend);
  }

  // Contacts abandoned per interval (short abandons lighter), all groups shown.
  abandonChart(totals, starts) {
    const t = this.ctx.t;
    const per = starts.map((start) => totals.filter((row) => row.start === start)
      .reduce((acc, row) => ({ abandoned: acc.abandoned + row.abandoned, short: acc.short + row.short_abandoned, offered: acc.offered + row.offered }), { abandoned: 0, short: 0, offered: 0 }));
    const max = Math.max(1, ...per.map((p) => p.abandoned));
    const { chart, x, y, slot } = frame(starts, max, Math.min(4, max), t("report_abandon_chart"), (v) => String(Math.round(v)));
    chart.id = "report-abandon-chart";
    per.forEach((p, i) => {
      if (!p.abandoned) return;
      const long = p.abandoned - p.short;
      const label = `${clock(starts[i])}: ${t("report_abandoned_n", { n: p.abandoned, short: p.short, rate: pct(p.offered ? p.abandoned / p.offered : null) })}`;
      const bar = svg("g", { class: "abandon", "data-abandoned": p.abandoned }, svg("title", {}, label));
      if (long) bar.append(svg("rect", { class: "bar abandoned", x: (x(i) + 1).toFixed(1), width: Math.max(1, slot - 2).toFixed(1), y: y(long).toFixed(1), height: (y(0) - y(long)).toFixed(1) }));
      if (p.short) bar.append(svg("rect", { class: "bar short", x: (x(i) + 1).toFixed(1), width: Math.max(1, slot - 2).toFixed(1), y: y(p.abandoned).toFixed(1), height: (y(long) - y(p.abandoned)).toFixed(1) }));
      chart.append(bar);
    });
    return h("figure", { class: "report-figure" }, h("figcaption", {}, t("report_abandon_chart")), chart);
  }

  agentTable(rows) {
    const t = this.ctx.t;
    const head = ["report_agent", "report_answered", "report_within", "report_aht", "report_first_response", "report_on_contact", "report_available", "report_away", "report_occupancy"]
      .map((key) => h("th", { scope: "col" }, t(key)));
    return h("table", { id: "report-agents", class: "board" },
      h("caption", {}, t("report_agents")),
      h("thead", {}, h("tr", {}, head)),
      h("tbody", {}, rows.map((row) => h("tr", { dataset: { agent: row.agent } },
        h("th", { scope: "row" }, row.agent),
        h("td", {}, String(row.answered)),
        h("td", {}, String(row.answered_within)),
        h("td", {}, secs(row.aht_ms)),
        h("td", {}, secs(row.first_response_mean_ms)),
        h("td", {}, spent(row.on_contact_ms + row.wrap_up_ms)),
        h("td", {}, spent(row.available_idle_ms)),
        h("td", {}, spent(row.away_ms)),
        h("td", {}, pct(row.occupancy))))));
  }

  routeTable(rows) {
    const t = this.ctx.t;
    const head = ["report_rule", "report_step", "group", "report_entered", "report_answered", "report_abandoned", "report_overflowed", "report_moved", "report_open"]
      .map((key) => h("th", { scope: "col" }, t(key)));
    return h("table", { id: "report-routes", class: "board" },
      h("caption", {}, t("report_routes")),
      h("thead", {}, h("tr", {}, head)),
      h("tbody", {}, rows.map((row) => h("tr", { dataset: { rule: row.rule, step: String(row.step) } },
        h("th", { scope: "row" }, row.rule),
        ...[row.step, row.group, row.entered, row.answered, row.abandoned, row.overflowed, row.moved, row.open].map((value) => h("td", {}, String(value)))))));
  }
}
