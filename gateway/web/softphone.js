// The browser as the agent's phone (docs/voice.md, "The browser as the
// phone"). "Take calls in this browser" asks for the microphone, then tells
// the server (`softphone`): calls no longer ring the desk phone. Accept on
// a call's offer negotiates the call's audio over the socket
// (`webrtc_offer` / `webrtc_answer`, then `webrtc_candidate`s): the audio
// connecting is the accept. A call that becomes this agent's otherwise
// (`assigned`: accepted elsewhere, a transfer to them) is connected the
// same way. The call bar gains Mute, a keypad (keypad tones through
// `RTCDTMFSender`, when the caller's line takes them) and the line's
// quality (jitter, loss, round trip from `getStats`); the header a
// microphone level meter. The
// choice is kept across reloads and said again after a reconnect. A call's
// audio does not go through the socket, so a drop does not touch it: the
// call bar says the call goes on while the page reconnects, and Hang up
// then closes the audio here (switchboard ends the call when the browser's
// leg closes). A call whose audio is lost is ended by switchboard after a
// grace (docs/voice.md); the bar says so. A reload ends the call: the page
// asks before leaving during one.

import { announce, h } from "./dom.js";

const STORE_KEY = "switchboard.softphone";

export class Softphone {
  constructor(ctx, elements) {
    this.ctx = ctx;
    this.t = ctx.t;
    this.pick = elements.pick;
    this.toggle = elements.toggle;
    this.state = elements.state;
    this.notice = elements.notice;
    this.audio = elements.audio;
    this.level = elements.level;
    this.on = false;
    this.linkOpen = true;
    this.iceServers = [];
    this.icePolicy = "all";
    this.stream = null;
    this.calls = new Map(); // session id -> { pc, pending, answered, muted, timer, ... }
    this.toggle.addEventListener("change", () => (this.toggle.checked ? this.enable() : this.disable()));
    window.addEventListener("beforeunload", (event) => this.guardUnload(event));
  }

  static supported() {
    return typeof RTCPeerConnection === "function" && !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
  }

  // The phone channel is on (the welcome has `phone`): offer the choice,
  // and take it again if this browser had it before a reload.
  show(phoneChannelOn) {
    this.pick.hidden = !phoneChannelOn;
    if (!phoneChannelOn) return;
    if (this.on) {
      // The socket came back: say the choice again (the old socket's went with it).
      this.ctx.link
        .request({ type: "softphone", on: true })
        .then((reply) => this.takeIce(reply))
        .catch((err) => {
          this.setState("off", this.t("softphone_failed", { message: err.message || String(err) }));
        });
    } else if (localStorage.getItem(STORE_KEY) === "on") {
      this.toggle.checked = true;
      this.enable();
    }
    this.render();
  }

  // The `softphone` answer's STUN/TURN servers (voice.ice_servers; TURN
  // credentials minted for this agent) and whether only relays may be used.
  takeIce(reply) {
    this.iceServers = reply.ice_servers || [];
    this.icePolicy = reply.ice_transport_policy === "relay" ? "relay" : "all";
    // Minted TURN credentials expire: ask again (`softphone` on) at four
    // fifths of their life, at the soonest after 30 s.
    if (this.iceTimer) clearTimeout(this.iceTimer);
    this.iceTimer = null;
    if (reply.ice_expires_at) {
      const delay = Math.max(30_000, 0.8 * (Number(reply.ice_expires_at) - Date.now()));
      this.iceTimer = setTimeout(() => this.renewIce(), delay);
    }
  }

  renewIce() {
    this.iceTimer = null;
    if (!this.on || !this.ctx.link.isOpen) return; // a reconnect asks anew
    this.ctx.link
      .request({ type: "softphone", on: true })
      .then((reply) => this.takeIce(reply))
      .catch(() => {});
  }

  setState(state, notice = "") {
    this.state.dataset.state = state;
    this.notice.textContent = notice;
    this.notice.hidden = !notice;
    if (notice) announce(notice);
    this.render();
  }

  render() {
    const state = this.state.dataset.state || "off";
    this.state.hidden = this.pick.hidden || state === "off";
    this.state.textContent = this.t(`softphone_${state}`);
  }

  async enable() {
    if (this.enabling || this.on) return;
    this.enabling = true;
    try {
      await this.enableNow();
    } finally {
      this.enabling = false;
    }
  }

  async enableNow() {
    if (!Softphone.supported()) {
      this.toggle.checked = false;
      this.setState("unsupported", this.t("softphone_no_webrtc"));
      return;
    }
    try {
      this.stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: false });
    } catch (err) {
      this.toggle.checked = false;
      localStorage.removeItem(STORE_KEY);
      const refused = err && (err.name === "NotAllowedError" || err.name === "SecurityError");
      this.setState("refused", this.t(refused ? "softphone_mic_refused" : "softphone_no_mic", { message: err ? err.message : "" }));
      return;
    }
    try {
      this.takeIce(await this.ctx.link.request({ type: "softphone", on: true }));
    } catch (err) {
      this.stopStream();
      this.toggle.checked = false;
      this.setState("off", this.t("softphone_failed", { message: err.message || String(err) }));
      return;
    }
    this.on = true;
    localStorage.setItem(STORE_KEY, "on");
    this.meter();
    this.setState("ready");
  }

  async disable() {
    this.on = false;
    if (this.iceTimer) clearTimeout(this.iceTimer);
    this.iceTimer = null;
    localStorage.removeItem(STORE_KEY);
    try {
      await this.ctx.link.request({ type: "softphone", on: false });
    } catch {
      // Disconnected: the server gave the desk phone back with the socket.
    }
    // A call in progress keeps its microphone until it ends.
    if (this.calls.size === 0) this.stopStream();
    this.setState("off");
  }

  stopStream() {
    if (this.stream) for (const track of this.stream.getTracks()) track.stop();
    this.stream = null;
    if (this.meterTimer) clearInterval(this.meterTimer);
    this.meterTimer = null;
    if (this.audioContext) this.audioContext.close().catch(() => {});
    this.audioContext = null;
    this.level.hidden = true;
  }

  // The microphone's level, ten times a second.
  meter() {
    if (this.meterTimer || typeof AudioContext !== "function") return;
    const audio = new AudioContext();
    this.audioContext = audio;
    const analyser = audio.createAnalyser();
    analyser.fftSize = 512;
    audio.createMediaStreamSource(this.stream).connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    this.meterTimer = setInterval(() => {
      analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const sample of samples) sum += sample * sample;
      this.level.value = Math.min(1, Math.sqrt(sum / samples.length) * 4);
    }, 100);
    this.level.hidden = false;
  }

  // A session event: a phone session becoming ours is answered here; its
  // end (or leaving us) closes the audio. A call followed by this
  // supervisor closes when it ends or they stop following it.
  onFrame(frame) {
    if (!frame.session) return;
    const card = this.ctx.cards.get(frame.session);
    const isCall = card && card.info.channel === "phone";
    const call = this.calls.get(frame.session);
    const ended = (frame.type === "call" && frame.call === "ended") || frame.type === "closed";
    const mine = frame.type === "monitored" && frame.by === `supervisor:${this.ctx.agent.id}`;
    if (call && call.monitor) {
      if (ended || (mine && frame.mode === "stop")) this.close(frame.session);
    } else if (this.on && this.stream && isCall && frame.type === "assigned" && frame.agent === this.ctx.agent.id) {
      this.answer(frame.session);
    } else if (ended || frame.type === "transferred") {
      this.close(frame.session);
    }
  }

  // A phone session this supervisor follows: they hear it (and, in whisper
  // or barge, are heard) in this browser rather than on their SIP phone.
  monitorCall(session) {
    if (this.on && this.stream) this.answer(session, { monitor: true });
  }

  async answer(session, { monitor = false } = {}) {
    if (this.calls.has(session) || !this.stream) return;
    let pc;
    try {
      pc = new RTCPeerConnection({ iceServers: this.iceServers, iceTransportPolicy: this.icePolicy });
    } catch (err) {
      // A STUN/TURN server the browser cannot take (voice.ice_servers).
      this.setState("ready", this.t("softphone_failed", { message: err.message || String(err) }));
      return;
    }
    // Each call plays in an audio element of its own (a supervisor may
    // hear a followed call beside their own).
    const audio = h("audio", { autoplay: true });
    this.audio.append(audio);
    const call = { session, monitor, pc, audio, pending: [], answered: false, connected: false, muted: false, timer: null, parts: null, sentKeys: "" };
    this.calls.set(session, call);
    for (const track of this.stream.getAudioTracks()) pc.addTrack(track, this.stream);
    pc.addEventListener("track", (event) => {
      audio.srcObject = event.streams[0] || new MediaStream([event.track]);
      audio.play().catch(() => {});
    });
    pc.addEventListener("icecandidate", (event) => {
      const candidate = event.candidate ? event.candidate.candidate : "";
      if (call.answered) this.sendCandidate(session, candidate);
      else call.pending.push(candidate);
    });
    pc.addEventListener("connectionstatechange", () => {
      const state = pc.connectionState;
      if (state === "connected") {
        call.connected = true;
        this.keypadState(call);
      }
      call.interrupted = state === "disconnected";
      this.renderLink(call);
      if (state !== "failed") return;
      // The server passes an unanswered call on, or ends an answered one
      // (or, for a followed call, stops the monitoring).
      const lost = call.monitor ? "softphone_monitor_lost" : "softphone_call_lost";
      this.setState("ready", this.t(call.connected ? lost : "softphone_call_failed"));
      this.close(session);
    });
    this.decorate(session, call);
    try {
      await pc.setLocalDescription(await pc.createOffer());
      const offer = { type: "webrtc_offer", session, sdp: pc.localDescription.sdp };
      if (monitor) offer.monitor = true;
      const reply = await this.ctx.link.request(offer);
      // Closed meanwhile (the call ended, Stop): nothing left to connect.
      if (this.calls.get(session) !== call) return;
      await pc.setRemoteDescription({ type: "answer", sdp: reply.sdp });
    } catch (err) {
      if (this.calls.get(session) !== call) return;
      this.setState("ready", this.t("softphone_failed", { message: err.message || String(err) }));
      this.close(session);
      return;
    }
    call.answered = true;
    for (const candidate of call.pending) this.sendCandidate(session, candidate);
    call.pending = [];
    call.timer = setInterval(() => this.readStats(session, call), 1000);
  }

  sendCandidate(session, candidate) {
    this.ctx.link.request({ type: "webrtc_candidate", session, candidate }).catch(() => {});
  }

  // Mute, the keypad and the line's quality, in the card's call bar.
  decorate(session, call) {
    const card = this.ctx.cards.get(session);
    if (!card) return;
    const mute = h("button", { class: "call-mute", type: "button", "aria-pressed": "false" }, this.t("call_mute"));
    const quality = h("span", { class: "call-quality", "aria-live": "off" });
    mute.addEventListener("click", () => {
      call.muted = !call.muted;
      for (const sender of call.pc.getSenders()) if (sender.track) sender.track.enabled = !call.muted;
      mute.setAttribute("aria-pressed", String(call.muted));
      mute.textContent = this.t(call.muted ? "call_unmute" : "call_mute");
    });
    const keypad = this.keypad(call);
    // A supervisor's ear on a call sends no keypad tones.
    keypad.toggle.hidden = call.monitor;
    const link = h("span", { class: "call-link", role: "status", hidden: true });
    const bar = card.call.element;
    bar.querySelector(".call-buttons").prepend(mute, keypad.toggle);
    bar.append(link, keypad.pad, quality);
    call.parts = { mute, quality, keypad, link };
    this.renderLink(call);
  }

  // The socket's state (Link's onStatus). A call in this browser goes on
  // while it is down; its bar says so.
  linkStatus(state) {
    this.linkOpen = state === "open";
    for (const call of this.calls.values()) this.renderLink(call);
  }

  // The note on a call's bar: the socket down, the audio interrupted.
  renderLink(call) {
    const link = call.parts && call.parts.link;
    if (!link) return;
    let state = "";
    if (!this.linkOpen) state = "reconnecting";
    else if (call.interrupted) state = "interrupted";
    link.dataset.state = state;
    link.hidden = !state;
    link.textContent = state ? this.t(`call_link_${state}`) : "";
  }

  // Whether this browser has `session`'s call.
  has(session) {
    return this.calls.has(session);
  }

  // Hang up without the socket (it is down): the call's audio closes here,
  // and switchboard ends the call when the browser's leg closes. The bar
  // follows the `ended` event once the socket is back.
  hangUpHere(session) {
    const call = this.calls.get(session);
    if (!call) return false;
    this.close(session);
    this.setState(this.on ? "ready" : "off", this.t("softphone_hung_up_offline"));
    return true;
  }

  // The keypad: a toggle and twelve keys, shown under the call bar. Keys
  // (clicked, or typed while the pad has focus) queue keypad tones on the
  // call's audio; what has been sent shows beside them.
  keypad(call) {
    const toggle = h("button", { class: "call-keypad", type: "button", "aria-expanded": "false", disabled: true }, this.t("call_keypad"));
    const sent = h("output", { class: "call-keypad-sent", "aria-live": "polite" });
    const keys = [..."123456789*0#"].map((key) => {
      const button = h("button", { class: "key", type: "button", "data-key": key }, key);
      button.addEventListener("click", () => this.press(call, key));
      return button;
    });
    const pad = h("div", { class: "call-keypad-pad", role: "group", "aria-label": this.t("call_keypad"), hidden: true },
      h("div", { class: "keys" }, ...keys), sent);
    pad.addEventListener("keydown", (event) => {
      if (!/^[0-9*#]$/.test(event.key)) return;
      event.preventDefault();
      this.press(call, event.key);
    });
    toggle.addEventListener("click", () => {
      pad.hidden = !pad.hidden;
      toggle.setAttribute("aria-expanded", String(!pad.hidden));
      if (!pad.hidden) keys[0].focus();
    });
    return { toggle, pad, sent };
  }

  // The keypad works while the call's audio can carry keypad tones: the
  // answer negotiated telephone-event (the caller's line takes them) and
  // the browser's sender is ready, which may come a little after the
  // connection. Checked when it connects and with every stats reading.
  keypadState(call) {
    const keypad = call.parts && call.parts.keypad;
    if (!keypad || !call.connected || !this.calls.has(call.session)) return;
    if (!call.dtmf) {
      const sender = call.pc.getSenders().find((candidate) => candidate.track && candidate.track.kind === "audio");
      call.dtmf = sender && sender.dtmf ? sender.dtmf : null;
      if (call.dtmf) {
        call.dtmf.addEventListener("tonechange", (event) => {
          if (!event.tone) return;
          call.sentKeys = (call.sentKeys + event.tone).slice(-32);
          keypad.sent.textContent = call.sentKeys;
        });
      }
    }
    // On hold the call carries none of the agent's audio, tones included.
    const card = this.ctx.cards.get(call.session);
    const held = !!card && card.call.state === "held";
    const usable = !!call.dtmf && call.dtmf.canInsertDTMF && !held;
    keypad.toggle.disabled = !usable;
    if (!usable) keypad.pad.hidden = true;
    keypad.toggle.setAttribute("aria-expanded", String(!keypad.pad.hidden));
    keypad.toggle.title = usable ? "" : this.t(held ? "call_keypad_held" : "call_keypad_unavailable");
  }

  press(call, key) {
    if (!call.dtmf || !call.dtmf.canInsertDTMF || call.parts.keypad.toggle.disabled) return;
    // Queued after any tones still playing: 100 ms each, 70 ms apart.
    call.dtmf.insertDTMF(call.dtmf.toneBuffer + key, 100, 70);
  }

  async readStats(session, call) {
    let inbound = null;
    let outbound = null;
    let remote = null;
    let report;
    try {
      report = await call.pc.getStats();
    } catch {
      return; // closed meanwhile
    }
    let pair = null;
    report.forEach((entry) => {
      if (entry.type === "transport" && entry.selectedCandidatePairId) pair = report.get(entry.selectedCandidatePairId) || pair;
      if (entry.kind !== "audio" && entry.mediaType !== "audio") return;
      if (entry.type === "inbound-rtp") inbound = entry;
      else if (entry.type === "outbound-rtp") outbound = entry;
      else if (entry.type === "remote-inbound-rtp") remote = entry;
    });
    this.keypadState(call);
    const quality = call.parts && call.parts.quality;
    if (!quality) return;
    quality.dataset.packetsReceived = String(inbound ? inbound.packetsReceived : 0);
    quality.dataset.packetsSent = String(outbound ? outbound.packetsSent : 0);
    quality.dataset.audioEnergy = String(inbound && inbound.totalAudioEnergy ? inbound.totalAudioEnergy : 0);
    const jitterMs = inbound && inbound.jitter != null ? Math.round(inbound.jitter * 1000) : null;
    const received = inbound ? inbound.packetsReceived : 0;
    const lost = inbound ? Math.max(0, inbound.packetsLost || 0) : 0;
    const lossPct = received + lost > 0 ? ((100 * lost) / (received + lost)).toFixed(1) : "0.0";
    const rttMs = remote && remote.roundTripTime != null ? Math.round(remote.roundTripTime * 1000) : null;
    // The path the audio takes: host (direct), srflx (through a NAT) or
    // relay (through a TURN server).
    const local = pair ? report.get(pair.localCandidateId) : null;
    quality.dataset.path = local ? local.candidateType : "";
    const text = this.t("call_quality", {
      jitter: jitterMs == null ? "–" : jitterMs,
      loss: lossPct,
      rtt: rttMs == null ? "–" : rttMs,
    });
    quality.textContent = local && local.candidateType === "relay" ? `${text} · ${this.t("call_relayed")}` : text;
  }

  close(session) {
    const call = this.calls.get(session);
    if (!call) return;
    this.calls.delete(session);
    if (call.timer) clearInterval(call.timer);
    call.pc.close();
    if (call.parts) {
      call.parts.link.hidden = true;
      call.parts.mute.disabled = true;
      call.parts.keypad.toggle.disabled = true;
      call.parts.keypad.pad.hidden = true;
    }
    call.audio.srcObject = null;
    call.audio.remove();
    if (this.calls.size === 0 && !this.on) this.stopStream();
  }

  // Leaving the page ends a call in it: ask first.
  guardUnload(event) {
    if (this.calls.size === 0) return;
    event.preventDefault();
    event.returnValue = "";
  }

  relabel() {
    this.render();
    for (const call of this.calls.values()) {
      if (!call.parts) continue;
      call.parts.mute.textContent = this.t(call.muted ? "call_unmute" : "call_mute");
      call.parts.keypad.toggle.textContent = this.t("call_keypad");
      call.parts.keypad.pad.setAttribute("aria-label", this.t("call_keypad"));
      this.renderLink(call);
    }
  }
}
