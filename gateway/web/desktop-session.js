// One conversation on the desktop: its messages (deduplicated by seq, own
// messages shown at once and marked delivered on their ack), the customer's
// typing, reply suggestions while the agent types (click, or Alt+1..3), the
// transfer, wrap-up and close actions, and for a phone session the call bar
// (desktop-call.js).

import { announce, clear, formatTime, h, uniqueId } from "./dom.js";
import { CallBar } from "./desktop-call.js";

const DISPOSITIONS = ["resolved", "follow_up", "escalated", "info", "other"];

export class SessionCard {
  constructor(ctx, id, info) {
    this.ctx = ctx;
    this.id = id;
    this.info = { ...info };
    this.state = info.state || "offered";
    this.seen = new Set();
    this.shown = false;
    this.lastTypingSent = 0;
    this.typingTimer = null;
    this.suggestTimer = null;
    this.suggestions = [];
    this.suggestionsFor = ""; // the draft they were asked for
    this.suggestAsked = 0; // numbers the requests: only the newest answer shows
    this.monitor = null; // how a supervisor follows this session: listen, whisper, barge
    this.responseDue = info.response_due ?? null; // when the reply the customer waits for is due
    this.responseKind = info.response_kind ?? null; // first or next
    this.build();
  }

  merge(info) {
    for (const [key, value] of Object.entries(info || {})) {
      if (value !== undefined && value !== null) this.info[key] = value;
    }
    if (info && info.state) this.state = info.state;
    if (info && "response_due" in info) {
      this.responseDue = info.response_due ?? null;
      this.responseKind = info.response_kind ?? null;
      this.renderDue();
    }
    if (info && info.customer && this.input) this.relabel();
  }

  get customerName() {
    const customer = this.info.customer || {};
    return customer.display_name || customer.id || "";
  }

  build() {
    const t = this.ctx.t;
    const inputId = `composer-${this.id}`;
    this.messages = h("ol", { class: "messages", "aria-live": "polite", "aria-label": t("conversations") });
    this.typing = h("p", { class: "typing muted", "aria-live": "polite" });
    this.input = h("textarea", { id: inputId, class: "composer-input", rows: 2 });
    this.inputLabel = h("label", { class: "visually-hidden", for: inputId });
    this.sendButton = h("button", { class: "primary send", type: "submit" });
    this.suggestList = h("ul", { class: "suggestions", "aria-live": "polite", dataset: { panel: "suggestions" } });
    this.suggestLabel = h("p", { class: "suggest-title muted" });
    this.form = h("form", { class: "composer" }, this.inputLabel, this.input, this.sendButton);
    this.transferSelect = h("select", { class: "transfer-target" });
    this.transferLabel = h("label", { class: "visually-hidden" });
    this.transferButton = h("button", { class: "transfer", type: "button" });
    this.disposition = h("select", { class: "disposition" });
    this.dispositionLabel = h("label", { class: "visually-hidden" });
    this.note = h("input", { class: "wrap-note" });
    this.wrapButton = h("button", { class: "wrap-up", type: "button" });
    this.closeButton = h("button", { class: "danger close", type: "button" });
    this.dismissButton = h("button", { class: "dismiss", type: "button", hidden: true });
    this.header = h("header", { class: "session-head" });
    this.due = h("p", { class: "response-due", role: "timer", hidden: true });
    // A supervisor following the session: how, and whom they write to.
    this.monitorMode = h("select", { class: "monitor-mode" });
    this.monitorStop = h("button", { class: "monitor-stop", type: "button" });
    this.monitorTo = h("select", { class: "monitor-to" });
    // On a call the audio comes to the supervisor's own SIP phone.
    this.monitorPhone = h("p", { class: "monitor-phone", hidden: true });
    this.monitorBar = h("div", { class: "monitor-bar action-row", hidden: true }, this.monitorMode, this.monitorStop, this.monitorPhone);
    this.monitorMode.addEventListener("change", () => this.ctx.monitor(this.id, this.monitorMode.value));
    this.monitorStop.addEventListener("click", () => this.ctx.monitor(this.id, "stop"));
    this.call = new CallBar(this);
    this.actions = h("div", { class: "session-actions" },
      h("div", { class: "action-row" }, this.transferLabel, this.transferSelect, this.transferButton),
      h("div", { class: "action-row" }, this.dispositionLabel, this.disposition, this.note, this.wrapButton, this.closeButton, this.dismissButton));
    this.form.insertBefore(this.monitorTo, this.sendButton);
    this.monitorTo.hidden = true;
    this.element = h("section", { class: "session panel", dataset: { session: this.id }, hidden: true, tabindex: -1 },
      this.header, this.due, this.monitorBar, this.call.element, this.messages, this.typing, this.suggestLabel, this.suggestList, this.form, this.actions);
    this.element.addEventListener("focusin", () => { if (this.ctx.activeId !== this.id) this.ctx.setActive(this.id); });
    this.element.addEventListener("click", () => { if (this.ctx.activeId !== this.id) this.ctx.setActive(this.id); });
    this.form.addEventListener("submit", (event) => { event.preventDefault(); this.sendMessage(); });
    this.input.addEventListener("keydown", (event) => this.onKey(event));
    this.input.addEventListener("input", () => this.onInput());
    this.transferButton.addEventListener("click", () => this.transfer());
    this.wrapButton.addEventListener("click", () => this.finish("wrap_up"));
    this.closeButton.addEventListener("click", () => this.finish("close"));
    this.dismissButton.addEventListener("click", () => this.ctx.removeCard(this.id));
    this.relabel();
    this.fillTransferTargets();
  }

  // Texts that depend on the language.
  relabel() {
    const t = this.ctx.t;
    this.inputLabel.textContent = t("message_input", { name: this.customerName });
    this.input.placeholder = t("message_input", { name: this.customerName });
    this.sendButton.textContent = t("send");
    this.suggestLabel.textContent = `${t("suggestions")} (${t("suggestion_key", { n: "1–3" })})`;
    this.transferLabel.textContent = t("transfer_to");
    this.transferSelect.setAttribute("aria-label", t("transfer_to"));
    this.transferButton.textContent = t("transfer");
    this.dispositionLabel.textContent = t("disposition");
    this.disposition.setAttribute("aria-label", t("disposition"));
    const chosen = this.disposition.value;
    clear(this.disposition);
    for (const value of DISPOSITIONS) this.disposition.append(h("option", { value }, t(`disp_${value}`)));
    if (chosen) this.disposition.value = chosen;
    this.note.placeholder = t("note");
    this.note.setAttribute("aria-label", t("note"));
    this.wrapButton.textContent = t("wrap_up");
    this.closeButton.textContent = t("close");
    this.dismissButton.textContent = t("dismiss");
    this.fillTransferTargets();
    this.renderMonitor();
    this.renderHeader();
    for (const item of this.messages.querySelectorAll("li[data-state]")) this.renderDelivery(item);
    this.renderSuggestions();
  }

  fillTransferTargets() {
    const t = this.ctx.t;
    const chosen = this.transferSelect.value;
    clear(this.transferSelect);
    const groups = h("optgroup", { label: t("to_group") });
    for (const group of this.ctx.groups) groups.append(h("option", { value: `group:${group.id}` }, group.display_name || group.id));
    const agents = h("optgroup", { label: t("to_agent") });
    for (const agent of this.ctx.agents) agents.append(h("option", { value: `agent:${agent.id}` }, agent.display_name));
    this.transferSelect.append(groups, agents);
    if (chosen) this.transferSelect.value = chosen;
  }

  renderHeader() {
    if (!this.header) return;
    const t = this.ctx.t;
    const customer = this.info.customer || {};
    const channel = this.info.channel || "";
    const parts = [
      h("h3", { class: "customer-name" }, this.customerName),
      customer.tier === "vip" ? h("span", { class: "badge vip" }, "VIP") : null,
      h("span", { class: "badge channel", dataset: { channel } }, this.ctx.channelName(channel)),
      h("span", { class: "badge session-state", dataset: { state: this.state } }, t(`state_${this.state}`)),
    ];
    if (this.monitor) parts.push(h("span", { class: "badge monitoring", dataset: { mode: this.monitor } }, t("monitoring", { mode: t(`monitor_${this.monitor}`) })));
    clear(this.header).append(...parts.filter(Boolean));
    const ended = ["closed", "transferred", "abandoned"].includes(this.state);
    if (this.monitor) {
      // Following, not holding: write only as the mode allows, no actions.
      this.input.disabled = ended || this.monitor === "listen";
      this.sendButton.disabled = this.input.disabled;
      this.actions.hidden = true;
      this.dismissButton.hidden = false;
      return;
    }
    this.actions.hidden = false;
    this.input.disabled = ended || this.state === "offered";
    this.sendButton.disabled = this.input.disabled;
    this.transferButton.disabled = this.state !== "assigned";
    this.wrapButton.disabled = this.state !== "assigned";
    this.closeButton.disabled = !["assigned", "wrap_up"].includes(this.state);
    this.dismissButton.hidden = !ended;
    if (channel === "phone") this.call.show();
    this.call.render();
  }

  // The supervisor follows this session `mode` (listen, whisper, barge), or
  // no longer (null).
  setMonitor(mode) {
    this.monitor = mode;
    this.renderMonitor();
    this.renderHeader();
  }

  renderMonitor() {
    if (!this.monitorBar) return;
    const t = this.ctx.t;
    this.monitorBar.hidden = !this.monitor;
    this.monitorTo.hidden = !this.monitor || this.monitor === "listen";
    if (!this.monitor) return;
    this.monitorMode.replaceChildren(...["listen", "whisper", "barge"].map((mode) => h("option", { value: mode }, t(`monitor_${mode}`))));
    this.monitorMode.value = this.monitor;
    this.monitorMode.setAttribute("aria-label", t("monitor_mode"));
    this.monitorStop.textContent = t("monitor_stop");
    this.monitorPhone.hidden = this.info.channel !== "phone";
    // Where the supervisor hears it: this browser when it is their phone.
    const inBrowser = !!(this.ctx.softphone && this.ctx.softphone.on);
    this.monitorPhone.textContent = t(inBrowser ? "monitor_browser" : "monitor_phone");
    const to = this.monitorTo.value;
    this.monitorTo.replaceChildren(h("option", { value: "agent" }, t("to_agent_only")),
      ...(this.monitor === "barge" ? [h("option", { value: "customer" }, t("to_customer"))] : []));
    if (to && [...this.monitorTo.options].some((option) => option.value === to)) this.monitorTo.value = to;
    this.monitorTo.setAttribute("aria-label", t("write_to"));
  }

  show() {
    if (this.shown) return;
    this.shown = true;
    this.element.hidden = false;
    document.getElementById("no-sessions").hidden = true;
  }

  setActive(active) {
    this.element.classList.toggle("active", active);
    this.element.setAttribute("aria-current", active ? "true" : "false");
  }

  // A frame of this session: an event (with seq), an ack, typing, or when
  // a reply is due.
  addEvent(frame) {
    if (frame.type === "ack") return this.onAck(frame);
    if (frame.type === "typing") return this.onTyping(frame);
    if (frame.type === "response_due") return this.onResponseDue(frame);
    if (this.seen.has(frame.seq)) return;
    this.seen.add(frame.seq);
    const t = this.ctx.t;
    switch (frame.type) {
      case "message": this.addMessage(frame); break;
      case "offer":
        this.merge({ customer: frame.customer, channel: frame.channel, group: frame.group });
        if (!this.monitor) this.setState("offered");
        break;
      case "queued": this.system(frame, t("queued_in", { group: frame.group || "" })); break;
      case "assigned":
        if (frame.agent === this.ctx.agent.id || this.monitor) this.setState("assigned");
        this.system(frame, t("assigned_to", { name: frame.agent_name }));
        break;
      case "transferred":
        if (frame.from === this.ctx.agent.id) this.setState("transferred");
        this.system(frame, t("transferred"));
        break;
      case "wrap_up": this.setState("wrap_up"); this.system(frame, t("wrapped_up")); break;
      case "closed": this.setState("closed"); this.system(frame, t("closed")); break;
      case "abandoned": this.setState("abandoned"); this.system(frame, t("abandoned")); break;
      case "rated": this.system(frame, t("rated", { score: frame.score, comment: frame.comment || "" })); break;
      case "call": this.system(frame, this.call.onEvent(frame), { call: frame.call }); break;
      case "delivery": this.onDelivery(frame); break;
      case "whisper": this.addMessage(frame, "whisper"); break;
      case "response_breached": {
        const text = t(`response_breached_${frame.kind}`, { time: formatTime(frame.due, this.ctx.i18n.lang) });
        this.system(frame, text, { breach: frame.kind });
        if (this.shown && Date.now() - frame.at < 60_000) announce(text);
        break;
      }
      case "monitored":
        this.system(frame, t(frame.mode === "stop" ? "monitor_stopped" : "monitor_started", { by: frame.by.replace(/^supervisor:/, ""), mode: t(`monitor_${frame.mode}`) }));
        // Our own follow stopped by the session (it moved to another group).
        if (frame.mode === "stop" && frame.by === `supervisor:${this.ctx.agent.id}` && this.monitor) this.setMonitor(null);
        break;
      case "steered": this.system(frame, t(`steered_${frame.change}`, { by: frame.by.replace(/^supervisor:|^admin:/, ""), group: frame.group || "", to: frame.to ?? "", reason: frame.reason })); break;
      default: break;
    }
  }

  setState(state) {
    this.state = state;
    this.renderHeader();
  }

  // Once a second (desktop.js): the call's talk timer, the reply countdown.
  tick() {
    this.call.tick();
    this.renderDue();
  }

  onResponseDue(frame) {
    this.responseDue = frame.due ?? null;
    this.responseKind = frame.kind ?? null;
    this.renderDue();
  }

  // "First reply due in 12 s", or how long it is overdue.
  renderDue() {
    if (!this.due) return;
    const t = this.ctx.t;
    const live = !["closed", "abandoned", "transferred", "wrap_up"].includes(this.state);
    this.due.hidden = !this.responseDue || !live;
    if (this.due.hidden) return;
    const secs = Math.round((this.responseDue - Date.now()) / 1000);
    const overdue = secs < 0;
    this.due.dataset.overdue = String(overdue);
    this.due.dataset.kind = this.responseKind || "";
    this.due.textContent = overdue
      ? t(`response_overdue_${this.responseKind}`, { secs: -secs })
      : t(`response_due_${this.responseKind}`, { secs });
  }

  system(frame, text, dataset = {}) {
    this.insert(h("li", { class: "msg system", dataset: { seq: frame.seq, type: frame.type, ...dataset } },
      h("span", { class: "body" }, text), " ", h("time", { class: "muted" }, formatTime(frame.at, this.ctx.i18n.lang))));
  }

  addMessage(frame, kind = "message") {
    const me = this.ctx.agent.id;
    const mine = frame.sender === `agent:${me}` || frame.sender === `supervisor:${me}`;
    const pending = frame.client_message_id
      ? this.messages.querySelector(`li[data-client-id="${CSS.escape(frame.client_message_id)}"]`)
      : null;
    const item = this.messageItem(frame, mine, kind);
    if (pending) {
      pending.replaceWith(item);
      this.reorder(item);
    } else {
      this.insert(item);
    }
    if (frame.sender === "customer") {
      this.typing.textContent = "";
      if (!this.input.value.trim()) this.suggest("");
    }
  }

  messageItem(frame, mine, kind = "message") {
    const t = this.ctx.t;
    const supervisor = frame.sender.startsWith("supervisor:");
    let who = frame.sender === "customer" ? this.customerName
      : mine ? t("you") : frame.sender === "system" ? t("system") : frame.sender.replace(/^agent:|^supervisor:/, "");
    if (kind === "whisper") who = t("whisper_from", { name: who });
    else if (supervisor) who = t("supervisor_said", { name: who });
    const item = h("li", {
      class: `msg ${mine ? "mine" : ""} ${kind === "whisper" ? "whisper" : ""}`,
      dataset: { seq: frame.seq ?? "", sender: frame.sender.startsWith("agent:") ? "agent" : supervisor ? "supervisor" : frame.sender, clientId: frame.client_message_id || "", type: kind },
    },
    h("div", { class: "body" }, frame.body),
    h("div", { class: "meta" },
      h("span", {}, who),
      frame.channel ? h("span", {}, this.ctx.channelName(frame.channel)) : null,
      h("time", {}, formatTime(frame.at ?? Date.now(), this.ctx.i18n.lang))));
    if (mine) {
      item.dataset.state = frame.seq === undefined ? "sending" : "sent";
      this.renderDelivery(item);
    }
    return item;
  }

  renderDelivery(item) {
    // A reply to a platform shows where it stands there instead.
    if (item.querySelector(".delivery")) return;
    let state = item.querySelector(".state");
    if (!state) {
      state = h("span", { class: "state" });
      item.querySelector(".meta").append(state);
    }
    state.dataset.state = item.dataset.state;
    state.textContent = this.ctx.t(item.dataset.state);
  }

  // Keeps messages in seq order; pending ones (no seq yet) stay last.
  insert(item) {
    const seq = Number(item.dataset.seq);
    if (item.dataset.seq !== "" && item.dataset.seq !== undefined) {
      const after = [...this.messages.children].find((other) => other.dataset.seq !== "" && Number(other.dataset.seq) > seq);
      if (after) { this.messages.insertBefore(item, after); this.scroll(); return; }
      const firstPending = [...this.messages.children].find((other) => other.dataset.seq === "");
      if (firstPending) { this.messages.insertBefore(item, firstPending); this.scroll(); return; }
    }
    this.messages.append(item);
    this.scroll();
  }

  reorder(item) {
    item.remove();
    this.insert(item);
  }

  scroll() {
    this.messages.scrollTop = this.messages.scrollHeight;
  }

  onAck(frame) {
    const item = this.messages.querySelector(`li[data-client-id="${CSS.escape(frame.client_message_id || "")}"]`);
    if (item && item.dataset.state === "sending") {
      item.dataset.state = "sent";
      this.renderDelivery(item);
    }
  }

  // Where an agent's message stands on its way to the customer's platform
  // (PROTOCOL.md §5.3 `delivery`): shown under the message; a refusal is
  // also a line of its own and announced, so the agent knows the customer
  // did not get it.
  onDelivery(frame) {
    const t = this.ctx.t;
    const item = this.messages.querySelector(`li.msg[data-seq="${frame.of}"]`);
    if (item) {
      let state = item.querySelector(".delivery");
      if (!state) {
        item.querySelector(".state")?.remove();
        state = h("span", { class: "delivery" });
        item.querySelector(".meta").append(state);
      }
      state.dataset.state = frame.state;
      state.textContent = t(`delivery_${frame.state}`, { account: frame.account });
      state.title = frame.reason || "";
    }
    if (frame.state === "failed") {
      const text = t("delivery_refused", { account: frame.account, reason: frame.reason || frame.code || "" });
      this.system(frame, text, { delivery: "failed" });
      announce(text);
    }
  }

  onTyping(frame) {
    if (frame.sender !== "customer") return;
    this.typing.textContent = this.ctx.t("typing", { name: this.customerName });
    clearTimeout(this.typingTimer);
    this.typingTimer = setTimeout(() => { this.typing.textContent = ""; }, 4000);
  }

  async sendMessage() {
    const body = this.input.value.trim();
    if (!body) return;
    const client_message_id = uniqueId("a");
    // A supervisor following the session whispers to the agent, or barges in.
    const type = this.monitor && this.monitorTo.value !== "customer" ? "whisper" : "message";
    const sender = this.monitor ? `supervisor:${this.ctx.agent.id}` : `agent:${this.ctx.agent.id}`;
    const item = this.messageItem({ sender, body, client_message_id, at: Date.now() }, true, type);
    this.insert(item);
    this.input.value = "";
    this.clearSuggestions();
    try {
      await this.ctx.link.request({ type, session: this.id, client_message_id, body });
      if (item.dataset.state === "sending") { item.dataset.state = "sent"; this.renderDelivery(item); }
    } catch (err) {
      item.dataset.state = "failed";
      this.renderDelivery(item);
      item.title = err.message;
      announce(this.ctx.t("error", { message: err.message }));
    }
  }

  onKey(event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      this.sendMessage();
      return;
    }
    if (event.altKey && /^[1-3]$/.test(event.key)) {
      const chosen = this.suggestions[Number(event.key) - 1];
      if (chosen) {
        event.preventDefault();
        this.useSuggestion(chosen);
      }
    }
  }

  onInput() {
    const now = Date.now();
    if (this.state === "assigned" && !this.monitor && now - this.lastTypingSent > 3000) {
      this.lastTypingSent = now;
      this.ctx.link.send({ type: "typing", session: this.id });
    }
    clearTimeout(this.suggestTimer);
    this.suggestTimer = setTimeout(() => this.suggest(this.input.value.trim()), 250);
  }

  async suggest(text) {
    if (["closed", "transferred", "abandoned", "offered"].includes(this.state)) return;
    const asked = ++this.suggestAsked;
    let suggestions;
    try {
      const list = await this.ctx.api("GET", `/sessions/${this.id}/suggestions?text=${encodeURIComponent(text)}&limit=3`);
      suggestions = list.suggestions.slice(0, 3);
    } catch (err) {
      suggestions = [];
    }
    if (asked !== this.suggestAsked) return; // a newer draft asked since
    this.suggestions = suggestions;
    this.suggestionsFor = text;
    this.renderSuggestions();
  }

  renderSuggestions() {
    if (!this.suggestList) return;
    clear(this.suggestList);
    this.suggestList.dataset.for = this.suggestionsFor;
    this.suggestLabel.hidden = this.suggestions.length === 0;
    this.suggestions.forEach((suggestion, index) => {
      this.suggestList.append(h("li", {},
        h("button", {
          type: "button",
          class: "suggestion",
          dataset: { templateId: suggestion.template_id },
          "aria-keyshortcuts": `Alt+${index + 1}`,
          onclick: () => this.useSuggestion(suggestion),
        }, h("kbd", {}, `${index + 1}`), " ", h("span", { class: "suggestion-text" }, suggestion.text))));
    });
  }

  clearSuggestions() {
    clearTimeout(this.suggestTimer); // the draft it would ask for is gone
    this.suggestAsked++; // an answer still on its way is stale
    this.suggestions = [];
    this.suggestionsFor = "";
    this.renderSuggestions();
  }

  useSuggestion(suggestion) {
    if (this.ctx.usage) this.ctx.usage("suggestion_inserted");
    this.input.value = suggestion.text;
    this.input.focus();
    this.clearSuggestions();
  }

  // Puts text at the end of the draft (knowledge-base answers).
  insertText(text) {
    this.input.value = this.input.value.trim() ? `${this.input.value.trim()}\n${text}` : text;
    this.input.focus();
  }

  async transfer() {
    const [kind, target] = this.transferSelect.value.split(/:(.*)/s);
    if (!target) return;
    try {
      await this.ctx.link.request({ type: "transfer", session: this.id, [kind]: target });
    } catch (err) {
      announce(this.ctx.t("error", { message: err.message }));
    }
  }

  async finish(type) {
    const disposition = this.ctx.t(`disp_${this.disposition.value}`);
    const note = this.note.value.trim();
    const summary = note ? `[${disposition}] ${note}` : `[${disposition}]`;
    try {
      await this.ctx.link.request({ type, session: this.id, summary });
    } catch (err) {
      announce(this.ctx.t("error", { message: err.message }));
    }
  }
}
