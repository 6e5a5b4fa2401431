// A WebSocket to /ws/customer or /ws/agent that follows PROTOCOL.md §3: it
// remembers the highest seq per session (never from an ack), says hello with
// last_seq after every (re)connect, reconnects with backoff and jitter (at
// once after 4008), matches replies to requests by request_id, and pings
// every 25 s so a dead server is noticed.

import { uniqueId } from "./dom.js";

export class Link {
  // options: path ("/ws/agent"), token, query (extra URL parameters),
  // initialSeqs ({session: seq}, e.g. 0 for closed sessions to replay),
  // onFrame(frame), onStatus("connecting" | "open" | "closed"),
  // onWelcome(frame), onRefused() -> Promise<boolean> (false stops retrying).
  constructor(options) {
    this.options = options;
    this.seqs = Object.assign({}, options.initialSeqs || {});
    this.pending = new Map();
    this.backoffMs = 500;
    this.socket = null;
    this.stopped = false;
    this.pingTimer = null;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearInterval(this.pingTimer);
    if (this.socket) this.socket.close(1000, "bye");
  }

  get isOpen() {
    return this.socket !== null && this.socket.readyState === WebSocket.OPEN;
  }

  // Sends a frame without waiting for a reply; false when not connected.
  send(frame) {
    if (!this.isOpen) return false;
    this.socket.send(JSON.stringify(frame));
    return true;
  }

  // Sends a frame and resolves with its reply (rejects with the error frame).
  request(frame) {
    const request_id = uniqueId("r");
    return new Promise((resolve, reject) => {
      if (!this.isOpen) {
        reject(Object.assign(new Error("not connected"), { code: "disconnected" }));
        return;
      }
      this.pending.set(request_id, { resolve, reject });
      this.socket.send(JSON.stringify({ ...frame, request_id }));
    });
  }

  connect() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const params = new URLSearchParams(this.options.query || {});
    params.set("token", this.options.token);
    const socket = new WebSocket(`${proto}//${location.host}${this.options.path}?${params}`);
    this.socket = socket;
    let opened = false;
    this.status("connecting");
    socket.addEventListener("open", () => {
      opened = true;
      this.backoffMs = 500;
      this.status("open");
      this.hello();
      clearInterval(this.pingTimer);
      this.pingTimer = setInterval(() => this.send({ type: "ping" }), 25000);
    });
    socket.addEventListener("message", (event) => this.receive(event.data));
    socket.addEventListener("close", async (event) => {
      clearInterval(this.pingTimer);
      if (this.socket !== socket) return;
      this.socket = null;
      for (const { reject } of this.pending.values()) {
        reject(Object.assign(new Error("connection lost"), { code: "disconnected" }));
      }
      this.pending.clear();
      this.status("closed");
      if (this.stopped) return;
      if (!opened && this.options.onRefused) {
        const retry = await this.options.onRefused();
        if (!retry) return;
      }
      const delay = event.code === 4008 ? 0 : this.backoffMs * (0.75 + Math.random() / 2);
      this.backoffMs = Math.min(this.backoffMs * 2, 30000);
      setTimeout(() => { if (!this.stopped) this.connect(); }, delay);
    });
  }

  async hello() {
    try {
      const welcome = await this.request({ type: "hello", last_seq: { ...this.seqs } });
      if (this.options.onWelcome) this.options.onWelcome(welcome);
    } catch (err) {
      console.warn("hello failed", err);
    }
  }

  receive(text) {
    let frame;
    try { frame = JSON.parse(text); } catch (_) { return; }
    if (frame.request_id && this.pending.has(frame.request_id)) {
      const { resolve, reject } = this.pending.get(frame.request_id);
      // history answers with events, then ok: only the last reply settles it.
      const isEvent = frame.session !== undefined && frame.seq !== undefined && frame.type !== "ack";
      if (!isEvent) {
        this.pending.delete(frame.request_id);
        if (frame.type === "error") reject(Object.assign(new Error(frame.message), { code: frame.code, frame }));
        else resolve(frame);
      }
    }
    if (frame.session !== undefined && typeof frame.seq === "number" && frame.type !== "ack") {
      this.seqs[frame.session] = Math.max(frame.seq, this.seqs[frame.session] ?? 0);
    }
    if (frame.type !== "pong") this.options.onFrame(frame);
  }

  status(state) {
    if (this.options.onStatus) this.options.onStatus(state);
  }
}
