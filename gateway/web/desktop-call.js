// The call bar of a phone session's card: the caller's number, the call's
// state (in the queue, ringing on my phone, talking with a running talk
// timer, on hold, ended with its duration), Hold/Resume and Hang up (the
// `call` frame, PROTOCOL.md §5.1). It follows the session's `call` events
// (§5.3), live and replayed, so a reload shows the same bar; the card puts
// each event in its message list as a system line (`lineFor`).

import { announce, h } from "./dom.js";

// 75_000 -> "1:15"; an hour or more -> "1:02:03".
export function formatDuration(ms) {
  const total = Math.max(0, Math.floor((Number(ms) || 0) / 1000));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = String(total % 60).padStart(2, "0");
  return hours > 0 ? `${hours}:${String(minutes).padStart(2, "0")}:${seconds}` : `${minutes}:${seconds}`;
}

export class CallBar {
  // card: the SessionCard (its ctx, session id and state).
  constructor(card) {
    this.card = card;
    this.ctx = card.ctx;
    this.state = "waiting"; // waiting, ringing, talking, held, ended
    this.from = "";
    this.ringingAgent = null;
    this.answeredAt = null; // server time of `answered`
    this.talkMs = null; // from `ended`
    this.fromLabel = h("span", { class: "call-from" });
    this.stateLabel = h("span", { class: "call-state badge", "aria-live": "polite" });
    this.timer = h("span", { class: "call-timer", role: "timer" });
    this.holdButton = h("button", { class: "call-hold", type: "button" });
    this.hangUpButton = h("button", { class: "danger call-hang-up", type: "button" });
    this.holdButton.addEventListener("click", () => this.control(this.holdButton.dataset.action));
    this.hangUpButton.addEventListener("click", () => this.control("hang_up"));
    this.element = h("div", { class: "call-bar", role: "group", hidden: true },
      this.fromLabel, this.stateLabel, this.timer,
      h("span", { class: "call-buttons" }, this.holdButton, this.hangUpButton));
  }

  // The card's session is a call: show the bar.
  show() {
    this.element.hidden = false;
  }

  // The caller's number: from `started`, else the customer id of a phone
  // customer (`phone:+86…`).
  get number() {
    if (this.from) return this.from;
    const customer = this.card.info.customer || {};
    return String(customer.id || "").replace(/^phone:/, "");
  }

  agentName(id) {
    if (!id) return "";
    if (this.ctx.agent && id === this.ctx.agent.id) return this.ctx.agent.display_name;
    const agent = this.ctx.agents.find((other) => other.id === id);
    return agent ? agent.display_name : id;
  }

  // A `call` event: updates the bar; returns the system line for it.
  onEvent(frame) {
    const t = this.ctx.t;
    const before = this.state;
    let line;
    switch (frame.call) {
      case "started":
        this.from = frame.from || "";
        line = frame.digits
          ? t("call_started_digits", { number: this.number, digits: frame.digits })
          : t("call_started", { number: this.number });
        break;
      case "ringing":
        if (this.state !== "ended") this.state = "ringing";
        this.ringingAgent = frame.agent || null;
        line = t("call_ringing", { name: this.agentName(frame.agent) });
        break;
      case "answered":
        this.state = "talking";
        this.answeredAt = frame.at;
        line = t("call_answered", { name: this.agentName(frame.agent) });
        break;
      case "held":
        if (this.state !== "ended") this.state = "held";
        line = t("call_held");
        break;
      case "resumed":
        if (this.state !== "ended") this.state = "talking";
        line = t("call_resumed");
        break;
      case "digits":
        line = t("call_digits", { digits: frame.digits || "" });
        break;
      case "ended":
        this.state = "ended";
        this.talkMs = frame.talk_ms ?? 0;
        line = t(`call_ended_${frame.by || "dropped"}`, { duration: formatDuration(this.talkMs) });
        break;
      default:
        line = t("call_event", { call: frame.call });
        break;
    }
    this.show();
    this.render();
    if (this.state !== before && this.card.shown) announce(this.stateText());
    return line;
  }

  stateText() {
    const t = this.ctx.t;
    if (this.state === "ringing") {
      const mine = !this.ringingAgent || (this.ctx.agent && this.ringingAgent === this.ctx.agent.id);
      return mine ? t("call_state_ringing") : t("call_state_ringing_other");
    }
    if (this.state === "ended") return `${t("call_state_ended")} · ${formatDuration(this.talkMs)}`;
    return t(`call_state_${this.state}`);
  }

  // Texts and buttons; the card calls it when its own state changes too.
  render() {
    const t = this.ctx.t;
    this.element.setAttribute("aria-label", t("call_bar", { number: this.number }));
    this.fromLabel.textContent = t("call_from", { number: this.number });
    this.stateLabel.dataset.state = this.state;
    this.stateLabel.textContent = this.stateText();
    const held = this.state === "held";
    this.holdButton.dataset.action = held ? "resume" : "hold";
    this.holdButton.textContent = held ? t("call_resume") : t("call_hold");
    const mine = this.card.state === "assigned";
    this.holdButton.disabled = !mine || !["talking", "held"].includes(this.state);
    this.hangUpButton.textContent = t("call_hang_up");
    this.hangUpButton.disabled = !mine || this.state === "ended";
    this.tick();
  }

  // Once a second: the talk timer.
  tick() {
    const connected = this.answeredAt !== null && ["talking", "held"].includes(this.state);
    this.timer.hidden = !connected;
    if (connected) {
      const elapsed = Date.now() - Number(this.answeredAt);
      this.timer.textContent = formatDuration(elapsed);
      this.timer.setAttribute("aria-label", this.ctx.t("call_talk_time", { duration: formatDuration(elapsed) }));
    }
  }

  async control(action) {
    // The socket is down and the call is in this browser: hanging up
    // closes its audio here; switchboard ends the call from that.
    const softphone = this.ctx.softphone;
    if (action === "hang_up" && !this.ctx.link.isOpen && softphone && softphone.has(this.card.id)) {
      softphone.hangUpHere(this.card.id);
      return;
    }
    try {
      await this.ctx.link.request({ type: "call", session: this.card.id, action });
    } catch (err) {
      announce(this.ctx.t("error", { message: err.message }));
    }
  }
}
