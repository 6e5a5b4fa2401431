// The supervisor's live wallboard: every queue of their groups (waiting,
// longest wait, ready agents), agents by state and the service level against
// its target — over the last 15 and 60 minutes, with a sparkline of the
// hour in 5-minute slots and an alert when the last 15 minutes fall below
// target — read from GET /api/v1/wallboard every two seconds.

import { announce, clear, h } from "./dom.js";

const STATES = ["available", "busy", "away", "wrap_up", "not_responding", "offline"];

const SVG = "http://www.w3.org/2000/svg";

// An SVG element with attributes (dom.js's h() makes HTML elements).
function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  el.append(...children);
  return el;
}

// The hour's service level in 5-minute slots, against the target (dashed);
// slots with nothing answered or abandoned leave a gap.
function sparkline(points, targetPct, label) {
  const width = 96;
  const height = 24;
  const x = (i) => (i * width) / Math.max(1, points.length - 1);
  const y = (fraction) => height - 2 - fraction * (height - 4);
  const runs = [];
  let run = [];
  points.forEach((point, i) => {
    if (point === null || point === undefined) {
      if (run.length) runs.push(run);
      run = [];
    } else {
      run.push(`${x(i).toFixed(1)},${y(point).toFixed(1)}`);
    }
  });
  if (run.length) runs.push(run);
  return svg("svg", { class: "sparkline", width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label },
    svg("title", {}, label),
    svg("line", { class: "target", x1: 0, x2: width, y1: y(targetPct / 100), y2: y(targetPct / 100) }),
    ...runs.map((points) => points.length === 1
      ? svg("circle", { class: "level", cx: points[0].split(",")[0], cy: points[0].split(",")[1], r: 1.5 })
      : svg("polyline", { class: "level", points: points.join(" ") })));
}

function pct(fraction) {
  return fraction === null || fraction === undefined ? null : Math.round(fraction * 1000) / 10;
}

export class Wallboard {
  constructor(ctx, root) {
    this.ctx = ctx;
    this.root = root;
    this.board = null;
    this.alerted = new Set(); // groups below target at the last refresh
    this.refresh();
    setInterval(() => this.refresh(), 2000);
  }

  async refresh() {
    try {
      this.board = await this.ctx.api("GET", "/wallboard");
      this.error = null;
      if (this.ctx.control) this.ctx.control.update(this.board);
      if (this.ctx.reports) this.ctx.reports.setGroups(this.board.groups);
      this.announceAlerts();
    } catch (err) {
      this.error = err.message;
    }
    this.render();
  }

  // Says a group fell below target once, when it does (not every refresh).
  announceAlerts() {
    const below = new Set(this.board.groups.filter((group) => group.below_target).map((group) => group.id));
    for (const group of this.board.groups) {
      if (group.below_target && !this.alerted.has(group.id)) {
        announce(this.ctx.t("sl_alert", { group: group.display_name, pct: pct(group.service_level_15m.fraction), target: group.service_level.target_pct }));
      }
    }
    this.alerted = below;
  }

  render() {
    const t = this.ctx.t;
    const root = clear(this.root);
    if (this.error) root.append(h("p", { class: "error-text" }, t("error", { message: this.error })));
    if (!this.board) return;
    const alerts = this.board.groups.filter((group) => group.below_target);
    if (alerts.length) {
      root.append(h("ul", { id: "sl-alerts", class: "sl-alerts" }, alerts.map((group) =>
        h("li", { dataset: { group: group.id } },
          t("sl_alert", { group: group.display_name, pct: pct(group.service_level_15m.fraction), target: group.service_level.target_pct })))));
    }
    const head = h("tr", {}, [t("group"), t("waiting"), t("longest_wait"), t("ready_agents"), t("agents_by_state"), t("sl_15m"), t("sl_60m"), t("sl_hour"), t("sl")]
      .map((label) => h("th", { scope: "col" }, label)));
    const rows = this.board.groups.map((group) => {
      const sl = group.service_level;
      const pct = sl.fraction === null ? null : Math.round(sl.fraction * 1000) / 10;
      const below = pct !== null && pct < sl.target_pct;
      const recent = (span, cls) => {
        const value = span.fraction === null ? null : Math.round(span.fraction * 1000) / 10;
        return h("td", { class: `service-level recent ${cls} ${value !== null && value < sl.target_pct ? "below" : ""}` },
          value === null ? "–" : `${value}%`, h("span", { class: "muted" }, ` · ${span.n_answered_within}/${span.n_answered + span.n_abandoned - span.n_short_abandoned}`));
      };
      return h("tr", { class: group.below_target ? "alert" : "", dataset: { group: group.id, belowTarget: String(group.below_target) } },
        h("th", { scope: "row" }, group.display_name),
        h("td", { class: "n-waiting" }, String(group.n_waiting)),
        h("td", {}, group.longest_wait_ms === null ? "–" : `${Math.round(group.longest_wait_ms / 1000)} s`),
        h("td", {}, String(group.n_ready_agents)),
        h("td", { class: "by-state" }, STATES.filter((state) => group.agents_by_state[state])
          .map((state) => h("span", { class: "badge", dataset: { state } }, `${t(`presence_${state}`)} ${group.agents_by_state[state]}`))),
        recent(group.service_level_15m, "sl-15m"),
        recent(group.service_level_60m, "sl-60m"),
        h("td", { class: "sl-hour" }, sparkline(group.sparkline, sl.target_pct, t("sl_sparkline", { group: group.display_name }))),
        h("td", { class: `service-level ${below ? "below" : ""}`, title: t("sl_since_start", { target: sl.target_pct, threshold: sl.threshold_secs }) },
          pct === null ? "–" : `${pct}%`, h("span", { class: "muted" }, ` / ${sl.target_pct}% · ${sl.n_answered_within}/${sl.n_answered + sl.n_abandoned - sl.n_short_abandoned}`)));
    });
    root.append(
      h("table", { class: "board" }, h("caption", { class: "visually-hidden" }, t("wallboard")), h("thead", {}, head), h("tbody", {}, rows)),
      h("h3", {}, t("agents")),
      h("ul", { id: "wallboard-agents", class: "board-agents" }, this.board.agents.map((agent) =>
        h("li", { dataset: { agent: agent.id, activity: agent.activity } },
          h("span", { class: "badge", dataset: { state: agent.activity } }, t(`presence_${agent.activity}`)), " ",
          agent.display_name, " ",
          h("span", { class: "muted" }, t("sessions_n", { n: agent.n_sessions }))))));
  }
}
