// Small DOM helpers shared by the pages.

// h("li", {class: "msg", dataset: {seq: 3}, onclick: fn}, "text", child)
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

// A time of the API (ms since the Unix epoch, PROTOCOL.md §2) as a local time.
export function formatTime(at, lang) {
  const date = new Date(Number(at));
  if (Number.isNaN(date.getTime())) return "";
  const sameDay = new Date().toDateString() === date.toDateString();
  const locale = lang === "zh" ? "zh-CN" : "en-GB";
  return sameDay
    ? date.toLocaleTimeString(locale, { hour: "2-digit", minute: "2-digit", second: "2-digit" })
    : date.toLocaleString(locale, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

// Speaks text through the page's polite live region (#announcer).
export function announce(text) {
  const region = document.getElementById("announcer");
  if (!region) return;
  region.textContent = "";
  // A fresh text node after a tick so screen readers read repeats too.
  setTimeout(() => { region.textContent = text; }, 30);
}

// A unique id for client_message_id and request_id.
export function uniqueId(prefix) {
  const random = crypto.getRandomValues(new Uint32Array(2));
  return `${prefix}-${Date.now().toString(36)}-${random[0].toString(36)}${random[1].toString(36)}`;
}

// Reads ?token= once, keeps it in storage and takes it out of the address bar.
export function takeTokenFromUrl(storage, key) {
  const url = new URL(location.href);
  const token = url.searchParams.get("token");
  if (token) {
    storage.setItem(key, token);
    url.searchParams.delete("token");
    history.replaceState(null, "", url.pathname + (url.search || "") + url.hash);
  }
  return storage.getItem(key);
}
