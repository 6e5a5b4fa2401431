// The agent desktop (/desktop): sign-in, presence, offers, the sessions side
// by side, the customer panel, tickets, knowledge base, and by role the
// diagnostics (experts, supervisors) and the wallboard (supervisors).
// Everything live comes over /ws/agent (PROTOCOL.md §5); the rest is REST.

import { makeApi } from "./api.js";
import { announce, clear, h, takeTokenFromUrl } from "./dom.js";
import { makeI18n, languagePicker } from "./i18n.js";
import { Link } from "./socket.js";
import { TEXT } from "./desktop-text.js";
import { SessionCard } from "./desktop-session.js";
import { Side } from "./desktop-side.js";
import { Wallboard } from "./wallboard.js";
import { Control } from "./supervise.js";
import { Reports } from "./reports.js";
import { Softphone } from "./softphone.js";

const TOKEN_KEY = "switchboard.desktop.token";
const ROLE_RANK = { junior: 0, expert: 1, supervisor: 2 };

const i18n = makeI18n(TEXT);
const $ = (id) => document.getElementById(id);

const ctx = {
  i18n,
  t: i18n.t,
  token: null,
  api: null,
  link: null,
  agent: null,
  presence: { state: "offline" },
  phone: null, // { registered } when the phone channel is on
  cards: new Map(), // session id -> SessionCard
  offers: new Map(), // session id -> offer frame
  activeId: null,
  groups: [],
  agents: [],
  side: null,
  wallboard: null,
  control: null,
  monitor,
  setActive,
  removeCard,
  channelName: (channel) => {
    const key = `channel_${channel}`;
    const text = i18n.t(key);
    return text === key ? channel : text;
  },
};

function start() {
  for (const select of document.querySelectorAll(".lang-select")) languagePicker(select, i18n);
  i18n.apply();
  i18n.onChange(() => {
    for (const card of ctx.cards.values()) card.relabel();
    renderOffers();
    renderPresence();
    renderPhone();
    if (ctx.side) ctx.side.rerender();
    if (ctx.wallboard) ctx.wallboard.render();
    if (ctx.softphone) ctx.softphone.relabel();
  });
  $("signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("token-input").value.trim();
    if (token) signIn(token);
  });
  $("signout").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    location.reload();
  });
  const token = takeTokenFromUrl(sessionStorage, TOKEN_KEY);
  if (token) signIn(token);
  else showSignIn("");
}

function showSignIn(error) {
  $("app").hidden = true;
  $("signin").hidden = false;
  $("signin-error").textContent = error;
  $("token-input").focus();
}

async function signIn(token) {
  ctx.token = token;
  ctx.api = makeApi(() => ctx.token);
  let me;
  try {
    me = await ctx.api("GET", "/me");
  } catch (err) {
    sessionStorage.removeItem(TOKEN_KEY);
    showSignIn(err.status === 401 ? i18n.t("bad_token") : i18n.t("error", { message: err.message }));
    return;
  }
  if (!me.agent) {
    showSignIn(i18n.t("not_agent_token"));
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  ctx.agent = me.agent;
  applyRole(me.agent.role);
  $("signin").hidden = true;
  $("app").hidden = false;
  $("agent-name").textContent = me.agent.display_name;
  ctx.side = new Side(ctx);
  if (me.agent.role === "supervisor") {
    ctx.control = new Control(ctx, $("control-body"));
    ctx.reports = new Reports(ctx, $("reports-body"));
    ctx.wallboard = new Wallboard(ctx, $("wallboard-body"));
  }
  loadDirectory();
  wirePresence();
  ctx.softphone = new Softphone(ctx, {
    pick: $("softphone-pick"),
    toggle: $("softphone-toggle"),
    state: $("softphone-state"),
    notice: $("softphone-notice"),
    audio: $("softphone-audio"),
    level: $("mic-level"),
  });
  ctx.link = new Link({
    path: "/ws/agent",
    token,
    onFrame,
    onWelcome,
    onStatus: (state) => {
      const conn = $("connection");
      conn.dataset.state = state;
      conn.textContent = i18n.t(`conn_${state}`);
      ctx.softphone.linkStatus(state);
    },
    onRefused: async () => {
      try {
        await ctx.api("GET", "/me");
        return true;
      } catch (err) {
        if (err.status === 401) {
          sessionStorage.removeItem(TOKEN_KEY);
          showSignIn(i18n.t("bad_token"));
          return false;
        }
        return true;
      }
    },
  });
  ctx.link.start();
  setInterval(tick, 1000);
  watchPanels();
}

// Desktop usage (docs/reports.md "Desktop usage"): what the agent used,
// sent as `usage` frames; only the action and panel, nothing they wrote.
// Transfers and tickets are recorded by the server.
ctx.usage = (action, panel) => {
  if (!ctx.link || !ctx.link.isOpen) return;
  ctx.link.request(panel ? { type: "usage", action, panel } : { type: "usage", action }).catch(() => {});
};

// A panel (an element with data-panel) counts as used when the agent
// clicks or types in it, at most once a minute per panel.
const PANEL_EVERY_MS = 60_000;
function watchPanels() {
  const lastSent = new Map();
  const used = (event) => {
    const panel = event.target.closest && event.target.closest("[data-panel]");
    if (!panel) return;
    const name = panel.dataset.panel;
    const now = Date.now();
    if (now - (lastSent.get(name) || 0) < PANEL_EVERY_MS) return;
    lastSent.set(name, now);
    ctx.usage("panel_used", name);
  };
  document.addEventListener("click", used, true);
  document.addEventListener("input", used, true);
}

// Shows what the role may use: elements with data-min-role above the agent's
// role are removed from the page (not only hidden), so they are not in the
// accessibility tree either.
function applyRole(role) {
  document.body.dataset.role = role;
  $("agent-role").textContent = i18n.t(`role_${role}`);
  $("agent-role").dataset.i18n = `role_${role}`;
  for (const el of document.querySelectorAll("[data-min-role]")) {
    if ((ROLE_RANK[el.dataset.minRole] ?? 9) > (ROLE_RANK[role] ?? 0)) el.remove();
  }
}

async function loadDirectory() {
  try {
    const [groups, agents] = await Promise.all([ctx.api("GET", "/groups"), ctx.api("GET", "/agents")]);
    ctx.groups = groups.groups;
    ctx.agents = agents.agents.filter((agent) => agent.id !== ctx.agent.id);
    for (const card of ctx.cards.values()) card.fillTransferTargets();
  } catch (err) {
    console.warn("groups and agents not loaded", err);
  }
}

function wirePresence() {
  const select = $("presence-select");
  const reason = $("away-reason");
  select.addEventListener("change", () => {
    reason.hidden = select.value !== "away";
    if (!reason.hidden) reason.focus();
  });
  $("presence-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const frame = { type: "presence", state: select.value };
    if (select.value === "away") frame.reason = reason.value.trim() || i18n.t("presence_away");
    try {
      const reply = await ctx.link.request(frame);
      $("presence-forced").hidden = true;
      ctx.presence = reply.presence;
      renderPresence();
      announce(presenceText());
    } catch (err) {
      announce(i18n.t("error", { message: err.message }));
      $("presence-state").textContent = i18n.t("error", { message: err.message });
    }
  });
}

function presenceText() {
  const presence = ctx.presence;
  if (presence.state === "wrap_up" && presence.until) {
    const secs = Math.max(0, Math.round((presence.until - Date.now()) / 1000));
    return i18n.t("wrap_up_until", { secs });
  }
  const label = i18n.t(`presence_${presence.state}`);
  return presence.reason ? `${label} · ${presence.reason}` : label;
}

// The agent's SIP phone: registered or not; no badge when the phone
// channel is off (the welcome has no `phone`).
function phoneText() {
  return i18n.t(ctx.phone && ctx.phone.registered ? "phone_registered" : "phone_not_registered");
}

function renderPhone() {
  const badge = $("phone-state");
  badge.hidden = !ctx.phone;
  if (!ctx.phone) return;
  badge.dataset.registered = String(ctx.phone.registered);
  badge.textContent = phoneText();
}

function renderPresence() {
  const badge = $("presence-state");
  badge.dataset.state = ctx.presence.state;
  badge.textContent = presenceText();
  if (["available", "away", "offline"].includes(ctx.presence.state)) $("presence-select").value = ctx.presence.state;
}

function onWelcome(welcome) {
  ctx.presence = welcome.presence;
  renderPresence();
  ctx.phone = welcome.phone || null;
  renderPhone();
  ctx.softphone.show(!!ctx.phone);
  renderQueues(welcome.queues);
  // A card without `response_due` owes no reply (any countdown shown is stale).
  for (const card of welcome.sessions) {
    ensureCard(card.session, { ...card, response_due: card.response_due ?? null, response_kind: card.response_kind ?? null });
  }
  for (const offer of welcome.offers) {
    // The replayed `offer` event carries the deadline; keep the card data.
    ctx.offers.set(offer.session, { ...offer, ...(ctx.offers.get(offer.session) || {}) });
  }
  // Offers withdrawn while disconnected are gone from the welcome.
  for (const id of [...ctx.offers.keys()]) {
    if (!welcome.offers.some((offer) => offer.session === id)) ctx.offers.delete(id);
  }
  renderOffers();
  ctx.side.onReconnect();
  // Followed sessions went on while the socket was down.
  for (const card of ctx.cards.values()) if (card.monitor) catchUp(card);
}

function onFrame(frame) {
  switch (frame.type) {
    case "offer":
      // An offer to someone else: a followed session's history.
      if (frame.agent !== ctx.agent.id) break;
      ctx.offers.set(frame.session, frame);
      cardModel(frame.session, frame).addEvent(frame);
      renderOffers();
      announce(i18n.t("new_offer", { name: frame.customer ? frame.customer.display_name : "", channel: ctx.channelName(frame.channel) }));
      return;
    case "offer_withdrawn":
      if (frame.agent !== ctx.agent.id) break;
      ctx.offers.delete(frame.session);
      renderOffers();
      dropUnaccepted(frame.session);
      return;
    case "assigned":
      if (frame.agent === ctx.agent.id) {
        ctx.offers.delete(frame.session);
        renderOffers();
        const card = cardModel(frame.session, {});
        card.addEvent(frame);
        card.show();
        if (!ctx.activeId) setActive(frame.session);
        ctx.softphone.onFrame(frame);
        return;
      }
      break;
    case "customer_view":
      ctx.side.onCustomerView(frame);
      return;
    case "ticket":
      ctx.side.onTicket(frame);
      return;
    case "presence":
      ctx.presence = frame.presence;
      renderPresence();
      return;
    case "presence_forced": {
      // A supervisor set our presence: say who and why until we change it.
      ctx.presence = frame.presence;
      renderPresence();
      const notice = $("presence-forced");
      notice.textContent = i18n.t("presence_forced", { by: frame.by, presence: i18n.t(`presence_${frame.presence.state}`), reason: frame.reason });
      notice.hidden = false;
      return;
    }
    case "phone":
      ctx.phone = { registered: frame.registered };
      renderPhone();
      announce(phoneText());
      return;
    case "queues":
      renderQueues(frame.queues);
      return;
    case "error":
      if (!frame.request_id) announce(i18n.t("error", { message: frame.message }));
      return;
    default:
      break;
  }
  if (frame.session && typeof frame.seq === "number") {
    const card = cardModel(frame.session, {});
    card.addEvent(frame);
    if (ctx.activeId === frame.session) ctx.side.onSessionEvent(frame);
    ctx.softphone.onFrame(frame);
  }
}

// A supervisor follows a session live (`mode`: listen, whisper, barge), or
// stops (`stop`): its card shows the conversation so far and what follows.
async function monitor(sessionId, mode, info = {}) {
  try {
    await ctx.link.request({ type: "monitor", session: sessionId, mode });
  } catch (err) {
    announce(i18n.t("error", { message: err.message }));
    // The card's mode picker shows the mode still in force.
    ctx.cards.get(sessionId)?.renderMonitor();
    return false;
  }
  // Stopped: the session is not ours, its card goes (and its audio in
  // this browser).
  if (mode === "stop") {
    ctx.softphone.close(sessionId);
    removeCard(sessionId);
    return true;
  }
  const card = cardModel(sessionId, info);
  card.setMonitor(mode);
  card.show();
  setActive(sessionId);
  await catchUp(card);
  // A call, and this browser is the supervisor's phone: they hear it here.
  if (card.info.channel === "phone") ctx.softphone.monitorCall(sessionId);
  return true;
}

// What a followed session said since the card last heard from it.
async function catchUp(card) {
  const after = Math.max(0, ...card.seen);
  try {
    await ctx.link.request({ type: "history", session: card.id, after_seq: after });
  } catch (err) {
    announce(i18n.t("error", { message: err.message }));
  }
}

// The card of a session, created hidden until the session is assigned to us.
function cardModel(sessionId, info) {
  let card = ctx.cards.get(sessionId);
  if (!card) {
    card = new SessionCard(ctx, sessionId, info);
    ctx.cards.set(sessionId, card);
    $("sessions").append(card.element);
  } else {
    card.merge(info);
  }
  return card;
}

function ensureCard(sessionId, info) {
  const card = cardModel(sessionId, info);
  card.show();
  if (!ctx.activeId) setActive(sessionId);
  return card;
}

function dropUnaccepted(sessionId) {
  const card = ctx.cards.get(sessionId);
  if (card && !card.shown) removeCard(sessionId);
}

function removeCard(sessionId) {
  const card = ctx.cards.get(sessionId);
  if (!card) return;
  card.element.remove();
  ctx.cards.delete(sessionId);
  if (ctx.activeId === sessionId) {
    ctx.activeId = null;
    const next = [...ctx.cards.values()].find((other) => other.shown);
    if (next) setActive(next.id);
    else ctx.side.showNothing();
  }
  updateEmpty();
}

function setActive(sessionId) {
  ctx.activeId = sessionId;
  for (const card of ctx.cards.values()) card.setActive(card.id === sessionId);
  ctx.side.showSession(sessionId);
  updateEmpty();
}

function updateEmpty() {
  $("no-sessions").hidden = [...ctx.cards.values()].some((card) => card.shown);
}

function renderOffers() {
  const list = clear($("offers"));
  $("no-offers").hidden = ctx.offers.size > 0;
  for (const offer of ctx.offers.values()) {
    const customer = offer.customer || {};
    const name = customer.display_name || customer.id || "";
    const item = h("li", { class: "offer", dataset: { session: offer.session } },
      h("div", { class: "offer-who" },
        h("strong", {}, name), " ",
        customer.tier === "vip" ? h("span", { class: "badge vip" }, "VIP") : null, " ",
        h("span", { class: "badge channel", dataset: { channel: offer.channel || "" } }, ctx.channelName(offer.channel || ""))),
      h("div", { class: "countdown", dataset: { deadline: offer.deadline || 0 }, role: "timer" }, countdownText(offer.deadline)),
      h("div", { class: "offer-actions" },
        h("button", { class: "primary accept", type: "button", onclick: () => answerOffer(offer.session, "accept") }, i18n.t("accept")),
        h("button", { class: "reject", type: "button", onclick: () => answerOffer(offer.session, "reject") }, i18n.t("reject"))));
    list.append(item);
  }
}

function countdownText(deadline) {
  const secs = Math.max(0, Math.ceil(((deadline || 0) - Date.now()) / 1000));
  return i18n.t("seconds_left", { secs });
}

async function answerOffer(sessionId, type) {
  // A call with the browser as the phone: the page's audio connecting is
  // the accept (a leg that cannot connect passes the call on).
  const offer = ctx.offers.get(sessionId);
  if (type === "accept" && offer && offer.channel === "phone" && ctx.softphone.on) {
    ctx.softphone.answer(sessionId);
    return;
  }
  try {
    await ctx.link.request({ type, session: sessionId });
  } catch (err) {
    announce(i18n.t("error", { message: err.message }));
  }
}

function renderQueues(queues) {
  const list = clear($("queues"));
  for (const queue of queues || []) {
    list.append(h("li", { dataset: { group: queue.group } },
      i18n.t("queue_line", { group: queue.group, n: queue.n_waiting, ready: queue.n_ready_agents })));
  }
}

// Once a second: offer countdowns, the wrap-up countdown, queue figures.
let ticks = 0;
function tick() {
  for (const el of document.querySelectorAll("#offers .countdown")) {
    el.textContent = countdownText(Number(el.dataset.deadline));
  }
  if (ctx.presence.state === "wrap_up") renderPresence();
  for (const card of ctx.cards.values()) card.tick();
  ticks += 1;
  if (ticks % 5 === 0 && ctx.link && ctx.link.isOpen) {
    ctx.link.request({ type: "queues" }).then((reply) => renderQueues(reply.queues), () => {});
  }
}

start();
