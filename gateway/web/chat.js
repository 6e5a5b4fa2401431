// The customer chat (/chat), also shown inside the mobile app's web view.
//
// The conversation is rendered from session events only (PROTOCOL.md §2),
// deduplicated by (session, seq). Messages the customer types wait in a
// localStorage outbox until acked and are resent with the same
// client_message_id after every welcome (§3 rule 5). The customer's recent
// session ids are kept so that a reload replays them from the start.

import { Link } from "./socket.js";
import { makeI18n, languagePicker } from "./i18n.js";
import { h, clear, formatTime, announce, uniqueId, takeTokenFromUrl } from "./dom.js";
import { makeApi } from "./api.js";
import { TEXT } from "./chat-text.js";
import { makeTickets } from "./chat-tickets.js";
import {
  KEYS, store, lastSent, saveOutbox, outboxItem, dropFromOutbox, removeKey,
  bigOf, knownSessions, rememberSession, tokenSubject, adoptCustomer,
} from "./chat-store.js";

const TYPING_EVERY_MS = 3000;
const TYPING_SHOWN_MS = 4000;
const RESEND_AFTER_MS = 15000;
const OPEN_STATES = new Set(["new", "routing", "queued", "offered", "assigned", "wrap_up", "transferred"]);
const WAITING_STATES = new Set(["new", "routing", "queued", "offered", "transferred"]);
const SYSTEM_EVENTS = new Set(["queued", "assigned", "transferred", "wrap_up", "closed", "abandoned", "rated"]);

const i18n = makeI18n(TEXT);
const t = i18n.t;

const $ = (id) => document.getElementById(id);
const els = {
  header: $("chat-header"),
  customerName: $("customer-name"),
  vip: $("vip-badge"),
  connection: $("connection"),
  lang: $("lang"),
  agentBox: $("agent-box"),
  agentName: $("agent-name"),
  queue: $("queue-status"),
  leave: $("leave-button"),
  error: $("chat-error"),
  messages: $("messages"),
  typing: $("typing"),
  rating: $("rating"),
  stars: Array.from(document.querySelectorAll("#rating button[data-score]")),
  ratingComment: $("rating-comment"),
  ratingError: $("rating-error"),
  ratingSubmit: $("rating-submit"),
  ratingDone: $("rating-done"),
  composer: $("composer"),
  input: $("message-input"),
  send: $("send-button"),
  ticketList: $("ticket-list"),
  ticketsEmpty: $("tickets-empty"),
  ticketsError: $("tickets-error"),
};

// ---------------------------------------------------------------- state

let token = null;
let tokenIsVisitor = false;
let link = null;
let welcomed = false;
let stopped = false;
let wasOpen = false;
let connState = "connecting";
let errorText = null; // {key, vars} shown in #chat-error

const api = makeApi(() => token);
const tickets = makeTickets({ api, i18n, els });
const channel = new URL(location.href).searchParams.get("channel") === "app" ? "app" : "web";

const sessions = new Map(); // id -> {id, state, agentName, rated, queue}
const seen = new Set(); // "session:seq" of rendered events
const models = new WeakMap(); // li -> what it shows, to re-render on language change
let currentId = null;

function sessionOf(id) {
  let s = sessions.get(id);
  if (!s) {
    s = { id, state: undefined, agentName: null, rated: null, queue: null };
    sessions.set(id, s);
    rememberSession(id);
    if (currentId === null || bigOf(id) > bigOf(currentId)) currentId = id;
  }
  return s;
}

function current() { return currentId ? sessions.get(currentId) : null; }

// ---------------------------------------------------------------- messages list

// Order: by session (ids grow with time), then seq; a session's separator
// sorts before its first event; pending messages stay at the end.
function keyOf(li) {
  if (li.dataset.separator) return { s: bigOf(li.dataset.separator), q: 0 };
  if (li.dataset.session && li.dataset.seq) return { s: bigOf(li.dataset.session), q: Number(li.dataset.seq) };
  return null; // pending
}

function before(a, b) {
  if (a === null) return false;
  if (b === null) return true;
  return a.s < b.s || (a.s === b.s && a.q < b.q);
}

function nearBottom() {
  const list = els.messages;
  return list.scrollHeight - list.scrollTop - list.clientHeight < 80;
}

// Whether the list follows new content: true until the user scrolls up.
let stuck = true;
let autoScrollTop = -1; // where scrollDown() left it, to tell our scrolls from the user's

function scrollDown() {
  els.messages.scrollTop = els.messages.scrollHeight;
  autoScrollTop = els.messages.scrollTop;
  stuck = true;
}

function place(li) {
  const key = keyOf(li);
  // After the last element that sorts at or before it (pending: at the end).
  let after = els.messages.lastElementChild;
  while (after) {
    if (after !== li) {
      if (key === null) break;
      const other = keyOf(after);
      if (other !== null && !before(key, other)) break;
    }
    after = after.previousElementSibling;
  }
  if (after) {
    if (after.nextElementSibling !== li) after.after(li);
  } else if (els.messages.firstElementChild !== li) {
    els.messages.prepend(li);
  }
  if (key) ensureSeparator(li.dataset.separator || li.dataset.session);
  refreshSeparators();
}

function ensureSeparator(sessionId) {
  if (els.messages.querySelector(`li.separator[data-separator="${sessionId}"]`)) return;
  const li = h("li", { class: "separator", dataset: { separator: sessionId } });
  models.set(li, { kind: "separator" });
  fill(li);
  place(li);
}

// Every conversation but the first shown starts with a separator.
function refreshSeparators() {
  let first = true;
  for (const li of els.messages.children) {
    if (li.classList.contains("separator")) li.hidden = first;
    first = false;
  }
}

function senderKind(sender) {
  if (sender === "customer") return "customer";
  if (typeof sender === "string" && sender.startsWith("agent:")) return "agent";
  if (typeof sender === "string" && sender.startsWith("supervisor:")) return "supervisor";
  return "system";
}

function systemText(ev) {
  switch (ev.type) {
    case "assigned": return t("ev_assigned", { name: ev.agent_name || t("agentFallback") });
    case "rated": return t("ev_rated", { score: ev.score });
    default: return t("ev_" + ev.type);
  }
}

// Writes a list item's content from its model.
function fill(li) {
  const model = models.get(li);
  if (!model) return;
  clear(li);
  if (model.kind === "separator") {
    li.append(h("span", {}, t("newConversation")));
    return;
  }
  const ev = model.ev;
  const time = ev.at ? h("time", { datetime: new Date(ev.at).toISOString() }, formatTime(ev.at, i18n.lang)) : null;
  if (model.kind === "event") {
    li.append(h("div", { class: "body" }, systemText(ev)), h("div", { class: "meta" }, time));
    return;
  }
  const kind = senderKind(ev.sender);
  const name = kind === "customer" ? t("me")
    : kind === "agent" ? (model.agentName || t("agentFallback"))
    : kind === "supervisor" ? t("supervisor") : t("system");
  const meta = h("div", { class: "meta" }, h("span", { class: "sender" }, name), time);
  if (kind === "customer") {
    meta.append(h("span", { class: "state", dataset: { state: model.state } }, t("state_" + model.state)));
  }
  li.append(h("div", { class: "body" }, ev.body), meta);
  li.classList.toggle("failed", model.state === "failed");
  if (model.state === "failed") {
    if (model.error) li.append(h("p", { class: "error-text" }, model.error));
    li.append(h("button", { type: "button", class: "retry", onclick: () => retry(li) }, t("retry")));
  }
}

function setDeliveryState(li, state, error) {
  const model = models.get(li);
  if (!model || (model.state === state && model.error === error)) return;
  const wasFailed = model.state === "failed";
  model.state = state;
  model.error = error;
  if (state === "failed" || wasFailed) {
    fill(li);
  } else {
    const span = li.querySelector(".state");
    if (span) {
      span.dataset.state = state;
      span.textContent = t("state_" + state);
    }
  }
}

function pendingElement(clientId) {
  return els.messages.querySelector(`li[data-client-id="${CSS.escape(clientId)}"]`);
}

function addPending(item) {
  const li = h("li", { class: "msg mine", dataset: { sender: "customer", clientId: item.client_message_id } });
  models.set(li, {
    kind: "message",
    ev: { body: item.body, at: item.at, sender: "customer", client_message_id: item.client_message_id },
    state: item.failed ? "failed" : "sending",
    error: item.failed || null,
  });
  fill(li);
  place(li);
  return li;
}

function renderMessage(ev, s) {
  const stick = stuck;
  const kind = senderKind(ev.sender);
  let li = kind === "customer" && ev.client_message_id ? pendingElement(ev.client_message_id) : null;
  if (li && li.dataset.seq && !(li.dataset.session === ev.session && li.dataset.seq === String(ev.seq))) {
    li = null; // the same id used in another session: a different message
  }
  if (li) {
    // Our own message came back: the pending element becomes the real one.
    li.dataset.session = ev.session;
    li.dataset.seq = String(ev.seq);
    li.dataset.type = "message";
    const model = models.get(li);
    model.ev = ev;
    model.state = "sent";
    model.error = null;
    fill(li);
    dropFromOutbox(ev.client_message_id);
  } else {
    li = h("li", {
      class: kind === "customer" ? "msg mine" : kind === "system" ? "msg system" : "msg",
      dataset: { session: ev.session, seq: String(ev.seq), sender: kind, type: "message", clientId: ev.client_message_id && kind === "customer" ? ev.client_message_id : undefined },
    });
    models.set(li, { kind: "message", ev, state: "sent", agentName: kind === "agent" ? s.agentName : null });
    fill(li);
  }
  place(li);
  if (stick || kind === "customer") scrollDown();
}

function renderSystem(ev) {
  const stick = stuck;
  const li = h("li", { class: "msg system", dataset: { session: ev.session, seq: String(ev.seq), sender: "system", type: ev.type } });
  models.set(li, { kind: "event", ev });
  fill(li);
  place(li);
  if (stick) scrollDown();
}

// ---------------------------------------------------------------- events

function handleEvent(ev) {
  const key = `${ev.session}:${ev.seq}`;
  if (seen.has(key)) return;
  seen.add(key);
  const s = sessionOf(ev.session);
  switch (ev.type) {
    case "message":
      if (senderKind(ev.sender) === "agent") hideTyping();
      renderMessage(ev, s);
      break;
    case "queued":
      s.state = "queued";
      break;
    case "assigned":
      s.state = "assigned";
      s.agentName = ev.agent_name || null;
      s.queue = null;
      break;
    case "transferred":
      s.state = "transferred";
      s.queue = null;
      hideTyping();
      break;
    case "wrap_up":
    case "closed":
    case "abandoned":
      s.state = ev.type;
      s.queue = null;
      if (ev.type !== "wrap_up") hideTyping();
      break;
    case "rated":
      s.rated = { score: ev.score, comment: ev.comment };
      break;
    default:
      break;
  }
  if (SYSTEM_EVENTS.has(ev.type)) renderSystem(ev);
  updateStatus();
}

function handleQueueStatus(frame) {
  const s = sessionOf(frame.session);
  if (s.state === "assigned" || s.state === "wrap_up" || s.state === "closed" || s.state === "abandoned") return;
  if (!s.state) s.state = "queued";
  s.queue = { position: frame.position, wait: frame.estimated_wait_secs };
  updateStatus();
}

let typingTimer = null;
let typingName = null;

function showTyping(frame) {
  if (frame.session !== currentId) return;
  const s = sessions.get(frame.session);
  typingName = (s && s.agentName) || null;
  els.typing.textContent = t("typing", { name: typingName || t("agentFallback") });
  els.typing.hidden = false;
  clearTimeout(typingTimer);
  typingTimer = setTimeout(hideTyping, TYPING_SHOWN_MS);
}

function hideTyping() {
  clearTimeout(typingTimer);
  els.typing.hidden = true;
  els.typing.textContent = "";
}

function formatWait(secs) {
  if (typeof secs !== "number" || !Number.isFinite(secs)) return t("waitSoon");
  if (secs < 60) return t("waitSecs", { n: Math.max(1, Math.round(secs)) });
  return t("waitMins", { n: Math.round(secs / 60) });
}

let ratingFor = null;
let ratingScore = 0;

// Agent, queue, leave button and rating follow the newest session.
function updateStatus() {
  const s = current();
  const state = s ? s.state : undefined;

  const withAgent = s && (state === "assigned" || state === "wrap_up") && s.agentName;
  els.agentBox.hidden = !withAgent;
  els.agentName.textContent = withAgent ? s.agentName : "";

  const waiting = s && WAITING_STATES.has(state);
  els.queue.hidden = !waiting;
  if (waiting && s.queue) {
    els.queue.dataset.position = String(s.queue.position);
    els.queue.dataset.wait = String(s.queue.wait);
    els.queue.textContent = t("queue", { position: s.queue.position, wait: formatWait(s.queue.wait) });
  } else {
    delete els.queue.dataset.position;
    delete els.queue.dataset.wait;
    els.queue.textContent = waiting ? t("queueWaiting") : "";
  }

  els.leave.disabled = !(s && (state === undefined || OPEN_STATES.has(state)));

  const rateable = s && (state === "wrap_up" || state === "closed");
  if (rateable && !s.rated) {
    if (ratingFor !== s.id || els.rating.hidden) resetRating(s.id);
    els.rating.hidden = false;
    els.ratingDone.hidden = true;
  } else {
    const focusInside = els.rating.contains(document.activeElement);
    els.rating.hidden = true;
    els.ratingDone.hidden = !(rateable && s.rated);
    if (focusInside) (els.ratingDone.hidden ? els.input : els.ratingDone).focus();
  }
}

// ---------------------------------------------------------------- sending

function sendItem(item) {
  if (!link || !link.isOpen || !welcomed || item.failed) return;
  lastSent.set(item.client_message_id, Date.now());
  // The ack and any error come through onFrame as well; nothing to do here.
  link.request({ type: "message", client_message_id: item.client_message_id, body: item.body }).catch(() => {});
}

function submit() {
  const body = els.input.value;
  if (!body.trim()) {
    els.input.focus();
    return;
  }
  const item = { client_message_id: uniqueId("c"), body, at: Date.now() };
  store.outbox.push(item);
  saveOutbox();
  addPending(item);
  scrollDown();
  els.input.value = "";
  saveDraft();
  sendItem(item);
}

function markAcked(frame) {
  if (!frame.client_message_id) return;
  if (frame.session) {
    sessionOf(frame.session);
    updateStatus();
  }
  dropFromOutbox(frame.client_message_id);
  const li = pendingElement(frame.client_message_id);
  if (li) setDeliveryState(li, "sent", null);
}

function markFailed(frame) {
  const clientId = frame.client_message_id;
  const item = outboxItem(clientId);
  const message = frame.message || frame.code || "";
  if (item) {
    item.failed = message;
    saveOutbox();
  }
  const li = pendingElement(clientId);
  if (li && !li.dataset.seq) setDeliveryState(li, "failed", message);
  announce(t("errSend", { message }));
}

function retry(li) {
  const model = models.get(li);
  if (!model) return;
  const clientId = model.ev.client_message_id;
  let item = outboxItem(clientId);
  if (!item) {
    item = { client_message_id: clientId, body: model.ev.body, at: model.ev.at || Date.now() };
    store.outbox.push(item);
  }
  delete item.failed;
  saveOutbox();
  setDeliveryState(li, "sending", null);
  els.input.focus();
  sendItem(item);
}

function resendOutbox() {
  for (const item of store.outbox) sendItem(item);
}

// Messages whose ack never came (e.g. refused for rate before being read).
setInterval(() => {
  const now = Date.now();
  for (const item of store.outbox) {
    if (!item.failed && now - (lastSent.get(item.client_message_id) || 0) > RESEND_AFTER_MS) sendItem(item);
  }
}, 5000);

function saveDraft() {
  try {
    if (els.input.value) sessionStorage.setItem(KEYS.draft, els.input.value);
    else sessionStorage.removeItem(KEYS.draft);
  } catch (_) { /* disabled */ }
}

let lastTypingAt = 0;

function maybeSendTyping() {
  const s = current();
  if (!s || s.state !== "assigned" || !link || !link.isOpen || !welcomed) return;
  if (!els.input.value.trim()) return;
  const now = Date.now();
  if (now - lastTypingAt < TYPING_EVERY_MS) return;
  lastTypingAt = now;
  link.send({ type: "typing", session: s.id });
}

// ---------------------------------------------------------------- rating

function resetRating(sessionId) {
  ratingFor = sessionId;
  ratingScore = 0;
  els.ratingComment.value = "";
  els.ratingError.hidden = true;
  els.ratingSubmit.disabled = false;
  paintStars();
}

function paintStars() {
  for (const button of els.stars) {
    const score = Number(button.dataset.score);
    button.setAttribute("aria-pressed", String(score === ratingScore));
    button.classList.toggle("lit", score <= ratingScore);
  }
}

async function submitRating() {
  if (!ratingScore) {
    els.ratingError.textContent = t("ratingPick");
    els.ratingError.hidden = false;
    els.stars[0].focus();
    return;
  }
  if (!link || !ratingFor) return;
  const frame = { type: "rate", session: ratingFor, score: ratingScore };
  const comment = els.ratingComment.value.trim();
  if (comment) frame.comment = comment;
  els.ratingSubmit.disabled = true;
  els.ratingError.hidden = true;
  try {
    await link.request(frame);
    // The `rated` event hides the form.
  } catch (err) {
    if (err.code === "invalid_state") {
      const s = sessions.get(frame.session);
      if (s && !s.rated) s.rated = { score: frame.score };
      updateStatus();
    }
    els.ratingError.textContent = t("errRate", { message: err.message });
    els.ratingError.hidden = false;
  } finally {
    els.ratingSubmit.disabled = false;
  }
}

// ---------------------------------------------------------------- connection

function showError(key, vars = {}) {
  errorText = key ? { key, vars } : null;
  els.error.hidden = !errorText;
  els.error.textContent = errorText ? t(key, vars) : "";
}

function renderConnection() {
  const state = stopped ? "closed" : connState;
  els.connection.dataset.state = state;
  els.connection.textContent = t(stopped ? "conn_stopped" : "conn_" + state);
}

function onStatus(state) {
  connState = state;
  if (state !== "open") welcomed = false;
  if (state === "open") {
    if (wasOpen === "lost") announce(t("connBack"));
    wasOpen = true;
  } else if (state === "closed" && wasOpen === true) {
    announce(t("connLost"));
    wasOpen = "lost";
  }
  renderConnection();
}

function onWelcome(frame) {
  welcomed = true;
  if (errorText && (errorText.key === "errVisitor" || errorText.key === "errBadLink")) showError(null);
  const customer = frame.customer || {};
  if (customer.id) adoptCustomer(customer.id, { keepOutbox: true });
  els.customerName.textContent = customer.display_name || "";
  els.vip.hidden = customer.tier !== "vip";
  for (const card of frame.sessions || []) {
    const s = sessionOf(card.session);
    // The replay that follows brings the events; the state is right already.
    s.state = card.state === "offered" || card.state === "routing" || card.state === "new" ? "queued" : card.state;
  }
  updateStatus();
  resendOutbox();
  tickets.load();
}

function onFrame(frame) {
  switch (frame.type) {
    case "welcome":
    case "ok":
      return;
    case "ack":
      markAcked(frame);
      return;
    case "error":
      if (frame.client_message_id) markFailed(frame);
      return;
    case "queue_status":
      handleQueueStatus(frame);
      return;
    case "typing":
      if (senderKind(frame.sender) === "agent") showTyping(frame);
      return;
    case "ticket":
      tickets.upsert(frame.ticket, true, frame.events);
      return;
    default:
      if (typeof frame.session === "string" && typeof frame.seq === "number") handleEvent(frame);
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// A new web visitor; retries while the server is busy or unreachable.
async function createVisitor() {
  token = null;
  let delay = 1000;
  for (;;) {
    try {
      const answer = await api("POST", "/visitors", {});
      token = answer.token;
      tokenIsVisitor = true;
      try {
        localStorage.setItem(KEYS.token, token);
        localStorage.setItem(KEYS.visitor, "1");
      } catch (_) { /* disabled */ }
      adoptCustomer(answer.customer_id || tokenSubject(token), { keepOutbox: true });
      if (errorText && errorText.key === "errVisitor") showError(null);
      return token;
    } catch (err) {
      if (err.status >= 400 && err.status < 500 && err.status !== 429 && err.status !== 408) {
        showError("errNoVisitors");
        return null;
      }
      showError("errVisitor");
      await sleep(delay * (0.75 + Math.random() / 2));
      delay = Math.min(delay * 2, 30000);
    }
  }
}

// The socket was refused: a bad token gets replaced (visitors) or reported.
async function onRefused() {
  let bad = false;
  try {
    const me = await api("GET", "/me");
    bad = me && me.role && me.role !== "customer";
  } catch (err) {
    bad = err.status === 401 || err.status === 404 || err.status === 403;
  }
  if (!bad) return true; // server down or busy: Link retries with backoff
  if (!tokenIsVisitor) {
    stopped = true;
    renderConnection();
    showError("errBadLink");
    return false;
  }
  removeKey(localStorage, KEYS.token);
  removeKey(localStorage, KEYS.sessions);
  const fresh = await createVisitor();
  if (!fresh) {
    stopped = true;
    renderConnection();
    return false;
  }
  link.options.token = fresh;
  link.seqs = {};
  return true;
}

// ---------------------------------------------------------------- language

function rerender() {
  renderConnection();
  els.messages.setAttribute("aria-busy", "true");
  for (const li of els.messages.children) fill(li);
  els.messages.removeAttribute("aria-busy");
  if (stuck) scrollDown();
  tickets.relabel();
  if (errorText) els.error.textContent = t(errorText.key, errorText.vars);
  if (!els.typing.hidden) els.typing.textContent = t("typing", { name: typingName || t("agentFallback") });
  if (!els.ratingError.hidden && !ratingScore) els.ratingError.textContent = t("ratingPick");
  updateStatus();
}

// ---------------------------------------------------------------- wiring

function wire() {
  i18n.apply();
  languagePicker(els.lang, i18n);
  i18n.onChange(rerender);

  els.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
  });
  els.input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.ctrlKey && !event.altKey && !event.metaKey
        && !event.isComposing && event.keyCode !== 229) {
      event.preventDefault();
      submit();
    }
  });
  els.input.addEventListener("input", () => {
    saveDraft();
    maybeSendTyping();
  });
  try {
    const draft = sessionStorage.getItem(KEYS.draft);
    if (draft) els.input.value = draft;
  } catch (_) { /* disabled */ }

  els.leave.addEventListener("click", async () => {
    const s = current();
    if (!s || !link) return;
    els.leave.disabled = true;
    try {
      await link.request({ type: "leave", session: s.id });
    } catch (err) {
      showError("errLeave", { message: err.message });
    } finally {
      updateStatus();
    }
  });

  for (const button of els.stars) {
    button.addEventListener("click", () => {
      ratingScore = Number(button.dataset.score);
      els.ratingError.hidden = true;
      paintStars();
    });
  }
  els.ratingSubmit.addEventListener("click", submitRating);

  // The phone layout sizes the chat to the screen below the header.
  const setHeaderHeight = () => {
    document.documentElement.style.setProperty("--header-h", `${els.header.offsetHeight}px`);
  };
  setHeaderHeight();
  if (window.ResizeObserver) new ResizeObserver(setHeaderHeight).observe(els.header);

  // Keep the newest message in view while the list grows or shrinks (rating
  // form, typing line, keyboard), unless the user scrolled up to read.
  els.messages.addEventListener("scroll", () => {
    if (Math.abs(els.messages.scrollTop - autoScrollTop) < 1) return;
    stuck = nearBottom();
  }, { passive: true });
  if (window.ResizeObserver) {
    new ResizeObserver(() => { if (stuck) scrollDown(); }).observe(els.messages);
  }

  renderConnection();
  updateStatus();
}

async function boot() {
  wire();
  const urlHasToken = new URL(location.href).searchParams.has("token");
  token = takeTokenFromUrl(localStorage, KEYS.token);
  if (urlHasToken) removeKey(localStorage, KEYS.visitor);
  tokenIsVisitor = localStorage.getItem(KEYS.visitor) === "1";
  if (token) adoptCustomer(tokenSubject(token));

  // Unacked messages from before the reload are shown (and resent) at once.
  for (const item of store.outbox) addPending(item);
  if (store.outbox.length) scrollDown();

  if (!token) {
    token = await createVisitor();
    if (!token) {
      stopped = true;
      renderConnection();
      return;
    }
  }

  const initialSeqs = {};
  for (const id of knownSessions()) initialSeqs[id] = 0;
  link = new Link({
    path: "/ws/customer",
    token,
    query: { channel },
    initialSeqs,
    onFrame,
    onStatus,
    onWelcome,
    onRefused,
  });
  link.start();
}

boot();
