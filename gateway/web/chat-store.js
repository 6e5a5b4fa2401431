// What the chat keeps in the browser: the token, the customer it belongs to,
// the newest session ids (replayed from the start after a reload), the outbox
// of messages not yet acknowledged, and the draft.

export const KEYS = {
  token: "switchboard.chat.token",
  visitor: "switchboard.chat.visitor", // "1" when the token is one we created
  customer: "switchboard.chat.customer", // the customer the stored state belongs to
  sessions: "switchboard.chat.sessions", // newest 5 session ids, newest first
  outbox: "switchboard.chat.outbox", // messages typed but not acked
  draft: "switchboard.chat.draft", // sessionStorage: the textarea
};
const KEEP_SESSIONS = 5;


export function readJson(storage, key, fallback) {
  try {
    const text = storage.getItem(key);
    return text ? JSON.parse(text) : fallback;
  } catch (_) {
    return fallback;
  }
}

export function writeJson(storage, key, value) {
  try { storage.setItem(key, JSON.stringify(value)); } catch (_) { /* full or disabled */ }
}

export function removeKey(storage, key) {
  try { storage.removeItem(key); } catch (_) { /* disabled */ }
}

export function bigOf(id) {
  try { return BigInt(id); } catch (_) { return 0n; }
}

export function knownSessions() {
  const list = readJson(localStorage, KEYS.sessions, []);
  return Array.isArray(list) ? list.filter((id) => typeof id === "string" && /^\d+$/.test(id)) : [];
}

export function rememberSession(id) {
  const list = knownSessions();
  if (list.includes(id)) return;
  list.push(id);
  list.sort((a, b) => (bigOf(b) > bigOf(a) ? 1 : bigOf(b) < bigOf(a) ? -1 : 0));
  writeJson(localStorage, KEYS.sessions, list.slice(0, KEEP_SESSIONS));
}

// outbox: [{client_message_id, body, at, failed?}], kept as store.outbox.
const initialOutbox = readJson(localStorage, KEYS.outbox, []);
export const store = { outbox: Array.isArray(initialOutbox) ? initialOutbox : [] };
export const lastSent = new Map(); // client_message_id -> ms of the last attempt

export function saveOutbox() { writeJson(localStorage, KEYS.outbox, store.outbox); }

export function outboxItem(clientId) { return store.outbox.find((item) => item.client_message_id === clientId); }

export function dropFromOutbox(clientId) {
  const before = store.outbox.length;
  store.outbox = store.outbox.filter((item) => item.client_message_id !== clientId);
  if (store.outbox.length !== before) saveOutbox();
  lastSent.delete(clientId);
}

// The token's subject, read from its claims (v1.<claims>.<signature>).
export function tokenSubject(token) {
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
export function adoptCustomer(customerId, { keepOutbox = false } = {}) {
  if (!customerId) return;
  const stored = localStorage.getItem(KEYS.customer);
  if (stored && stored !== customerId) {
    removeKey(localStorage, KEYS.sessions);
    if (!keepOutbox) {
      store.outbox = [];
      saveOutbox();
    }
  }
  try { localStorage.setItem(KEYS.customer, customerId); } catch (_) { /* disabled */ }
}
