// The customer's tickets on the chat page: listed newest first with their
// status, updated in place when a `ticket` frame arrives (announced for
// screen readers), re-read after every (re)connect.

import { announce, clear, formatTime, h } from "./dom.js";

const TICKET_STATUSES = ["open", "pending", "solved", "closed"];

// els: {ticketList, ticketsEmpty, ticketsError}
export function makeTickets({ api, i18n, els }) {
  const t = i18n.t;
  const tickets = new Map(); // id -> {record, li}

  function fillTicket(li, record) {
    const status = TICKET_STATUSES.includes(record.status) ? record.status : "open";
    li.dataset.ticketId = record.id;
    li.dataset.status = record.status;
    clear(li);
    const time = record.updated_at
      ? h("time", { datetime: new Date(record.updated_at).toISOString() }, formatTime(record.updated_at, i18n.lang))
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
    entries.sort((a, b) => (b.record.updated_at || 0) - (a.record.updated_at || 0));
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

  // Writes every ticket again in the language now chosen.
  function relabel() {
    for (const { li, record } of tickets.values()) fillTicket(li, record);
    if (ticketsError) els.ticketsError.textContent = t("ticketsError", { message: ticketsError });
  }

  return { upsert: upsertTicket, load: loadTickets, relabel };
}
