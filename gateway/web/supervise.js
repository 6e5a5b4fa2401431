// The supervisor's controls (docs/supervisor.md): take a waiting session of
// their groups out of its queue into another group or to one agent, change
// its priority, and set an agent's presence — each with a required reason,
// which the server records in the audit log. The lists follow the wallboard
// (every two seconds) without losing what the supervisor has picked.

import { h } from "./dom.js";

const PRESENCES = ["available", "away", "offline"];

export class Control {
  constructor(ctx, root) {
    this.ctx = ctx;
    this.root = root;
    this.waiting = []; // [{ session_id, group, priority, queued_at, offered_to }]
    this.groups = []; // [{ id, display_name }]
    this.agents = []; // [{ id, display_name }]
    this.build();
  }

  build() {
    const t = this.ctx.t;
    const field = (id, label, control) => h("label", { class: "control-field", for: id },
      h("span", { dataset: { i18n: label } }, t(label)), control);
    this.session = h("select", { id: "control-session", required: true });
    this.group = h("select", { id: "control-group" });
    this.agent = h("select", { id: "control-agent" });
    this.priority = h("input", { id: "control-priority", type: "number", step: "1", value: "10" });
    this.reason = h("input", { id: "control-reason", required: true, maxlength: "500", dataset: { i18nPlaceholder: "control_reason" }, placeholder: t("control_reason") });
    this.presenceAgent = h("select", { id: "control-presence-agent", required: true });
    this.live = h("select", { id: "control-live" });
    this.monitorMode = h("select", { id: "control-monitor-mode" },
      ["listen", "whisper", "barge"].map((mode) => h("option", { value: mode, dataset: { i18n: `monitor_${mode}` } }, t(`monitor_${mode}`))));
    this.presence = h("select", { id: "control-presence" },
      PRESENCES.map((state) => h("option", { value: state, dataset: { i18n: `presence_${state}` } }, t(`presence_${state}`))));
    this.status = h("p", { id: "control-status", class: "muted", role: "status", "aria-live": "polite" });
    const sessionForm = h("form", { id: "control-session-form", class: "control-form", onsubmit: (event) => event.preventDefault() },
      field("control-session", "control_waiting", this.session),
      field("control-group", "control_to_group", this.group),
      field("control-agent", "control_to_agent", this.agent),
      h("button", { id: "control-reassign", type: "button", onclick: () => this.reassign() }, t("control_reassign")),
      field("control-priority", "control_priority", this.priority),
      h("button", { id: "control-set-priority", type: "button", onclick: () => this.setPriority() }, t("control_set_priority")));
    const presenceForm = h("form", { id: "control-presence-form", class: "control-form", onsubmit: (event) => { event.preventDefault(); this.setPresence(); } },
      field("control-presence-agent", "control_agent", this.presenceAgent),
      field("control-presence", "presence", this.presence),
      h("button", { id: "control-apply-presence", type: "submit" }, t("control_set_presence")));
    const monitorForm = h("form", { id: "control-monitor-form", class: "control-form", onsubmit: (event) => { event.preventDefault(); this.monitor(); } },
      field("control-live", "control_live", this.live),
      field("control-monitor-mode", "monitor_mode", this.monitorMode),
      h("button", { id: "control-monitor", type: "submit", dataset: { i18n: "control_monitor" } }, t("control_monitor")));
    this.root.append(monitorForm, field("control-reason", "control_reason_label", this.reason), sessionForm, presenceForm, this.status);
  }

  // The wallboard's groups and agents, and each group's waiting sessions.
  async update(board) {
    this.groups = board.groups.map((group) => ({ id: group.id, display_name: group.display_name }));
    this.agents = board.agents.map((agent) => ({ id: agent.id, display_name: agent.display_name }));
    try {
      const [queues, open] = await Promise.all([
        Promise.all(this.groups.map((group) => this.ctx.api("GET", `/groups/${encodeURIComponent(group.id)}`))),
        this.ctx.api("GET", "/sessions"),
      ]);
      this.waiting = queues.flatMap((detail) => detail.queue.waiting.map((entry) => ({ ...entry, group: detail.group.id })));
      this.open = open.sessions.filter((session) => ["assigned", "wrap_up", "queued", "offered"].includes(session.state) && session.agent !== this.ctx.agent.id);
    } catch (err) {
      this.say(this.ctx.t("error", { message: err.message }));
    }
    this.fill();
  }

  // Replaces a select's options, keeping the picked value while it is
  // offered; with a blank first option, a picked value that went away
  // leaves nothing picked rather than the next one.
  static options(select, items, blank) {
    const picked = select.value;
    select.replaceChildren(...(blank ? [h("option", { value: "" }, blank)] : []),
      ...items.map(([value, label]) => h("option", { value }, label)));
    if (items.some(([value]) => value === picked)) select.value = picked;
    else if (blank) select.value = "";
  }

  fill() {
    const t = this.ctx.t;
    const now = Date.now();
    Control.options(this.session, this.waiting.map((entry) => [entry.session_id,
      t("control_waiting_line", { group: entry.group, session: entry.session_id.slice(-6), secs: Math.max(0, Math.round((now - entry.queued_at) / 1000)), priority: entry.priority })]),
    this.waiting.length ? t("control_pick") : t("control_nobody_waiting"));
    Control.options(this.group, this.groups.map((group) => [group.id, group.display_name]), t("control_same_group"));
    Control.options(this.agent, this.agents.map((agent) => [agent.id, agent.display_name]), t("control_any_agent"));
    Control.options(this.presenceAgent, this.agents.map((agent) => [agent.id, agent.display_name]));
    Control.options(this.live, (this.open || []).map((session) => [session.id,
      t("control_live_line", { group: session.group || "", session: session.id.slice(-6), customer: session.customer_id, agent: session.agent || t("nobody"), state: t(`state_${session.state}`) })]),
    (this.open || []).length ? t("control_pick") : t("control_nobody_live"));
  }

  // Opens the picked session live in a card, as the picked mode.
  async monitor() {
    const id = this.live.value;
    const session = (this.open || []).find((candidate) => candidate.id === id);
    if (!session) return;
    const mode = this.monitorMode.value;
    const ok = await this.ctx.monitor(id, mode, {
      customer: { id: session.customer_id, display_name: session.customer_id },
      channel: session.channel,
      state: session.state,
    });
    if (ok) this.say(this.ctx.t("control_monitoring", { session: id.slice(-6), mode: this.ctx.t(`monitor_${mode}`) }));
  }

  say(text) {
    this.status.textContent = text;
  }

  reasonOrSay() {
    const reason = this.reason.value.trim();
    if (!reason) {
      this.say(this.ctx.t("control_reason_needed"));
      this.reason.focus();
    }
    return reason;
  }

  async act(path, method, body, done) {
    try {
      await this.ctx.api(method, path, body);
      this.say(done);
      this.reason.value = "";
    } catch (err) {
      this.say(this.ctx.t("error", { message: err.message }));
    }
  }

  // The picked waiting session, or a word that one is needed.
  pickedSession() {
    if (!this.session.value) this.say(this.ctx.t("control_pick_session"));
    return this.session.value;
  }

  async reassign() {
    const session = this.pickedSession();
    if (!session) return;
    const reason = this.reasonOrSay();
    if (!reason) return;
    const body = { reason };
    if (this.group.value) body.group = this.group.value;
    if (this.agent.value) body.agent = this.agent.value;
    if (!body.group && !body.agent) {
      this.say(this.ctx.t("control_pick_target"));
      return;
    }
    await this.act(`/sessions/${session}/reassign`, "POST", body, this.ctx.t("control_reassigned", { session: session.slice(-6) }));
  }

  async setPriority() {
    const session = this.pickedSession();
    if (!session) return;
    const reason = this.reasonOrSay();
    if (!reason) return;
    const priority = Number.parseInt(this.priority.value, 10);
    await this.act(`/sessions/${session}/priority`, "POST", { priority, reason },
      this.ctx.t("control_reprioritised", { session: session.slice(-6), priority }));
  }

  async setPresence() {
    const agent = this.presenceAgent.value;
    const reason = this.reasonOrSay();
    if (!agent || !reason) return;
    const presence = this.presence.value;
    await this.act(`/agents/${encodeURIComponent(agent)}/presence`, "PUT", { presence, reason },
      this.ctx.t("control_presence_set", { agent, presence: this.ctx.t(`presence_${presence}`) }));
  }
}
