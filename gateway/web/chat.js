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

const KEYS = {
  token: "switchboard.chat.token",
  visitor: "switchboard.chat.visitor", // "1" when the token is one we created
  customer: "switchboard.chat.customer", // the customer the stored state belongs to
  sessions: "switchboard.chat.sessions", // newest 5 session ids, newest first
  outbox: "switchboard.chat.outbox", // messages typed but not acked
  draft: "switchboard.chat.draft", // sessionStorage: the textarea
};
const KEEP_SESSIONS = 5;
const TYPING_EVERY_MS = 3000;
const TYPING_SHOWN_MS = 4000;
const RESEND_AFTER_MS = 15000;
const OPEN_STATES = new Set(["new", "routing", "queued", "offered", "assigned", "wrap_up", "transferred"]);
const WAITING_STATES = new Set(["new", "routing", "queued", "offered", "transferred"]);
const SYSTEM_EVENTS = new Set(["queued", "assigned", "transferred", "wrap_up", "closed", "abandoned", "rated"]);
const TICKET_STATUSES = ["open", "pending", "solved", "closed"];

const i18n = makeI18n({
  zh: {
    title: "在线客服",
    skip: "跳到对话",
    language: "语言",
    vip: "VIP",
    conversation: "对话记录",
    agentLabel: "客服:",
    leave: "结束对话",
    inputLabel: "输入消息",
    placeholder: "输入消息…",
    hint: "按 Enter 发送,Shift+Enter 换行",
    send: "发送",
    tickets: "我的工单",
    noTickets: "暂无工单",
    ticketsError: "工单加载失败:{message}",
    conn_connecting: "正在连接…",
    conn_open: "已连接",
    conn_closed: "连接已断开,正在重连…",
    conn_stopped: "未连接",
    connLost: "连接已断开,正在重连",
    connBack: "已重新连接",
    queue: "排队中:您是第 {position} 位,预计等待 {wait}",
    queueWaiting: "正在为您安排客服…",
    waitSecs: "{n} 秒",
    waitMins: "约 {n} 分钟",
    waitSoon: "很快",
    typing: "{name} 正在输入…",
    agentFallback: "客服",
    me: "我",
    system: "系统",
    state_sending: "发送中…",
    state_sent: "已发送",
    state_failed: "发送失败",
    retry: "重试",
    ev_queued: "正在为您转接人工客服,请稍候",
    ev_assigned: "{name} 加入了对话",
    ev_transferred: "对话已转接,正在为您安排其他客服",
    ev_wrap_up: "客服已结束本次对话,欢迎为服务评分",
    ev_closed: "对话已结束",
    ev_abandoned: "您已离开排队",
    ev_rated: "您的评分:{score} 星",
    newConversation: "新对话",
    rateLegend: "请为本次服务评分",
    star1: "1 星,非常不满意",
    star2: "2 星,不满意",
    star3: "3 星,一般",
    star4: "4 星,满意",
    star5: "5 星,非常满意",
    ratingComment: "留言(可选)",
    rateSubmit: "提交评价",
    ratingDone: "感谢您的评价!",
    ratingPick: "请先选择 1 到 5 星",
    errRate: "评价未能提交:{message}",
    status_open: "处理中",
    status_pending: "等待中",
    status_solved: "已解决",
    status_closed: "已关闭",
    ticketUpdatedAt: "更新于 {time}",
    ticketStatus: "工单“{subject}”状态:{status}",
    ticketNew: "新工单“{subject}”:{status}",
    ticketChanged: "工单“{subject}”有更新",
    errBadLink: "此链接已失效,请重新打开客服页面。",
    errVisitor: "暂时无法连接客服,正在重试…",
    errNoVisitors: "在线客服暂不可用。",
    errLeave: "结束对话失败:{message}",
    errSend: "消息未能发送:{message}",
  },
  en: {
    title: "Customer service",
    skip: "Skip to the conversation",
    language: "Language",
    vip: "VIP",
    conversation: "Conversation",
    agentLabel: "Agent:",
    leave: "End chat",
    inputLabel: "Type a message",
    placeholder: "Type a message…",
    hint: "Enter sends, Shift+Enter starts a new line",
    send: "Send",
    tickets: "My tickets",
    noTickets: "No tickets yet",
    ticketsError: "Could not load tickets: {message}",
    conn_connecting: "Connecting…",
    conn_open: "Connected",
    conn_closed: "Disconnected, reconnecting…",
    conn_stopped: "Not connected",
    connLost: "Connection lost, reconnecting",
    connBack: "Connected again",
    queue: "In the queue: you are number {position}, estimated wait {wait}",
    queueWaiting: "Finding an agent for you…",
    waitSecs: "{n} s",
    waitMins: "about {n} min",
    waitSoon: "very soon",
    typing: "{name} is typing…",
    agentFallback: "Agent",
    me: "Me",
    system: "System",
    state_sending: "Sending…",
    state_sent: "Sent",
    state_failed: "Not sent",
    retry: "Retry",
    ev_queued: "Waiting for an agent, please hold on",
    ev_assigned: "{name} joined",
    ev_transferred: "You are being transferred to another agent",
    ev_wrap_up: "The agent ended the conversation; please rate it",
    ev_closed: "The conversation is closed",
    ev_abandoned: "You left the queue",
    ev_rated: "Your rating: {score} stars",
    newConversation: "New conversation",
    rateLegend: "Rate this conversation",
    star1: "1 star, very poor",
    star2: "2 stars, poor",
    star3: "3 stars, okay",
    star4: "4 stars, good",
    star5: "5 stars, excellent",
    ratingComment: "Comment (optional)",
    rateSubmit: "Send rating",
    ratingDone: "Thank you for your rating!",
    ratingPick: "Please pick 1 to 5 stars first",
    errRate: "The rating was not sent: {message}",
    status_open: "Open",
    status_pending: "Pending",
    status_solved: "Solved",
    status_closed: "Closed",
    ticketUpdatedAt: "updated {time}",
    ticketStatus: "Ticket “{subject}” is now {status}",
    ticketNew: "New ticket “{subject}”: {status}",
    ticketChanged: "Ticket “{subject}” was updated",
    errBadLink: "This link is no longer valid; please open the chat again.",
    errVisitor: "Cannot reach customer service, retrying…",
    errNoVisitors: "Chat is not available right now.",
    errLeave: "Could not end the chat: {message}",
    errSend: "The message was not sent: {message}",
  },
});
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

// ---------------------------------------------------------------- storage

function readJson(storage, key, fallback) {
  try {
    const text = storage.getItem(key);
    return text ? JSON.parse(text) : fallback;
  } catch (_) {
    return fallback;
  }
}

function writeJson(storage, key, value) {
  try { storage.setItem(key, JSON.stringify(value)); } catch (_) { /* full or disabled */ }
}

function removeKey(storage, key) {
  try { storage.removeItem(key); } catch (_) { /* disabled */ }
}

function bigOf(id) {
  try { return BigInt(id); } catch (_) { return 0n; }
}

function knownSessions() {
  const list = readJson(localStorage, KEYS.sessions, []);
  return Array.isArray(list) ? list.filter((id) => typeof id === "string" && /^\d+$/.test(id)) : [];
}

function rememberSession(id) {
  const list = knownSessions();
  if (list.includes(id)) return;
  list.push(id);
  list.sort((a, b) => (bigOf(b) > bigOf(a) ? 1 : bigOf(b) < bigOf(a) ? -1 : 0));
  writeJson(localStorage, KEYS.sessions, list.slice(0, KEEP_SESSIONS));
}

// outbox: [{client_message_id, body, at, failed?}]
let outbox = readJson(localStorage, KEYS.outbox, []);
if (!Array.isArray(outbox)) outbox = [];
const lastSent = new Map(); // client_message_id -> ms of the last attempt

function saveOutbox() { writeJson(localStorage, KEYS.outbox, outbox); }

function outboxItem(clientId) { return outbox.find((item) => item.client_message_id === clientId); }

function dropFromOutbox(clientId) {
  const before = outbox.length;
  outbox = outbox.filter((item) => item.client_message_id !== clientId);
  if (outbox.length !== before) saveOutbox();
  lastSent.delete(clientId);
}

// The token's subject, read from its claims (v1.<claims>.<signature>).
function tokenSubject(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const padded = part + "=".repeat((4 - (part.length % 4)) % 4);
    const claims = JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(padded), (c) => c.charCodeAt(0))));
    return typeof claims.sub === "string" ? claims.sub : null;
  } catch (_) {
    return null;
  }
}

// Stored sessions and outbox belong to one customer: forget them when the
// page is opened for another one.
function adoptCustomer(customerId, { keepOutbox = false } = {}) {
  if (!customerId) return;
  const stored = localStorage.getItem(KEYS.customer);
  if (stored && stored !== customerId) {
    removeKey(localStorage, KEYS.sessions);
    if (!keepOutbox) {
      outbox = [];
      saveOutbox();
    }
  }
  try { localStorage.setItem(KEYS.customer, customerId); } catch (_) { /* disabled */ }
}

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
  const name = kind === "customer" ? t("me") : kind === "agent" ? (model.agentName || t("agentFallback")) : t("system");
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
  outbox.push(item);
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
    outbox.push(item);
  }
  delete item.failed;
  saveOutbox();
  setDeliveryState(li, "sending", null);
  els.input.focus();
  sendItem(item);
}

function resendOutbox() {
  for (const item of outbox) sendItem(item);
}

// Messages whose ack never came (e.g. refused for rate before being read).
setInterval(() => {
  const now = Date.now();
  for (const item of outbox) {
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

// ---------------------------------------------------------------- tickets

const tickets = new Map(); // id -> {record, li}

function fillTicket(li, record) {
  const status = TICKET_STATUSES.includes(record.status) ? record.status : "open";
  li.dataset.ticketId = record.id;
  li.dataset.status = record.status;
  clear(li);
  const time = record.updated_at
    ? h("time", { datetime: record.updated_at }, formatTime(record.updated_at, i18n.lang))
    : null;
  li.append(
    h("span", { class: "ticket-subject" }, record.subject || record.id),
    h("span", { class: `badge status-${status}` }, t("status_" + status)),
    h("span", { class: "ticket-meta muted" },
      h("span", { class: "ticket-id" }, record.id),
      time ? " · " : null,
      time ? t("ticketUpdatedAt", { time: "" }).trim() + " " : null,
      time),
  );
}

function sortTickets() {
  const entries = Array.from(tickets.values());
  entries.sort((a, b) => String(b.record.updated_at || "").localeCompare(String(a.record.updated_at || "")));
  entries.forEach((entry, index) => {
    if (els.ticketList.children[index] !== entry.li) els.ticketList.insertBefore(entry.li, els.ticketList.children[index] || null);
  });
  els.ticketsEmpty.hidden = tickets.size > 0;
}

function upsertTicket(record, live, events) {
  if (!record || !record.id) return;
  const existing = tickets.get(record.id);
  if (existing && (existing.record.last_seq ?? 0) > (record.last_seq ?? 0)) return; // older than shown
  const statusText = t("status_" + (TICKET_STATUSES.includes(record.status) ? record.status : "open"));
  if (existing) {
    const previous = existing.record;
    existing.record = record;
    fillTicket(existing.li, record);
    if (live) {
      flash(existing.li);
      if (previous.status !== record.status) announce(t("ticketStatus", { subject: record.subject, status: statusText }));
      else if (events && events.length) announce(t("ticketChanged", { subject: record.subject }));
    }
  } else {
    const li = h("li");
    fillTicket(li, record);
    tickets.set(record.id, { record, li });
    if (live) {
      flash(li);
      announce(t("ticketNew", { subject: record.subject, status: statusText }));
    }
  }
  sortTickets();
}

function flash(li) {
  li.classList.remove("changed");
  void li.offsetWidth;
  li.classList.add("changed");
}

let ticketsError = null;

async function loadTickets() {
  try {
    const list = await api("GET", "/tickets");
    ticketsError = null;
    els.ticketsError.hidden = true;
    for (const record of Array.isArray(list) ? list : []) upsertTicket(record, false);
    sortTickets();
  } catch (err) {
    ticketsError = err.message || String(err);
    els.ticketsError.textContent = t("ticketsError", { message: ticketsError });
    els.ticketsError.hidden = false;
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
  loadTickets();
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
      upsertTicket(frame.ticket, true, frame.events);
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
  for (const { li, record } of tickets.values()) fillTicket(li, record);
  if (ticketsError) els.ticketsError.textContent = t("ticketsError", { message: ticketsError });
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
  for (const item of outbox) addPending(item);
  if (outbox.length) scrollDown();

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
