// The supervisor's live wallboard: every queue of their groups (waiting,
// longest wait, ready agents), agents by state and the service level against
// its target, read from GET /api/v1/wallboard every two seconds.

import { clear, h } from "./dom.js";

const STATES = ["available", "busy", "away", "wrap_up", "not_responding", "offline"];

export class Wallboard {
  constructor(ctx, root) {
    this.ctx = ctx;
    this.root = root;
    this.board = null;
    this.refresh();
    setInterval(() => this.refresh(), 2000);
  }

  async refresh() {
    try {
      this.board = await this.ctx.api("GET", "/wallboard");
      this.error = null;
      if (this.ctx.control) this.ctx.control.update(this.board);
    } catch (err) {
      this.error = err.message;
    }
    this.render();
  }

  render() {
    const t = this.ctx.t;
    const root = clear(this.root);
    if (this.error) root.append(h("p", { class: "error-text" }, t("error", { message: this.error })));
    if (!this.board) return;
    const head = h("tr", {}, [t("group"), t("waiting"), t("longest_wait"), t("ready_agents"), t("agents_by_state"), t("sl")]
      .map((label) => h("th", { scope: "col" }, label)));
    const rows = this.board.groups.map((group) => {
      const sl = group.service_level;
      const pct = sl.fraction === null ? null : Math.round(sl.fraction * 1000) / 10;
      const below = pct !== null && pct < sl.target_pct;
      return h("tr", { dataset: { group: group.id } },
        h("th", { scope: "row" }, group.display_name),
        h("td", { class: "n-waiting" }, String(group.n_waiting)),
        h("td", {}, group.longest_wait_ms === null ? "–" : `${Math.round(group.longest_wait_ms / 1000)} s`),
        h("td", {}, String(group.n_ready_agents)),
        h("td", { class: "by-state" }, STATES.filter((state) => group.agents_by_state[state])
          .map((state) => h("span", { class: "badge", dataset: { state } }, `${t(`presence_${state}`)} ${group.agents_by_state[state]}`))),
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
