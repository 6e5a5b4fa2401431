// The desktop's right column for the selected conversation: the customer
// 360° (profile, identities, 30-day cross-channel history, tickets with a
// live status control, last summary), ticket entry (basic for juniors,
// priority and tags for experts and supervisors), knowledge-base search with
// one-click insert, and the diagnostics (experts and supervisors).

import { announce, clear, formatTime, h } from "./dom.js";

const STATUSES = ["open", "pending", "solved", "closed"];

export class Side {
  constructor(ctx) {
    this.ctx = ctx;
    this.views = new Map(); // customer id -> 360° view
    this.watched = new Set(); // ticket ids
    this.diagnostics = null;
    this.diagTimer = null;
    this.kbHits = [];
    this.customerBody = document.getElementById("customer-body");
    this.diagBody = document.getElementById("diagnostics-body");
    document.getElementById("ticket-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.createTicket();
    });
    document.getElementById("kb-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.search();
    });
  }

  get card() {
    return this.ctx.cards.get(this.ctx.activeId);
  }

  get customerId() {
    const card = this.card;
    return card && card.info.customer ? card.info.customer.id : null;
  }

  showNothing() {
    clear(this.customerBody).append(h("p", { class: "muted" }, this.ctx.t("pick_session")));
    if (this.diagBody.isConnected) clear(this.diagBody).append(h("p", { class: "muted" }, this.ctx.t("pick_session")));
  }

  async showSession(sessionId) {
    this.renderCustomer();
    this.loadDiagnostics(sessionId);
    const customerId = this.customerId;
    if (!customerId) return;
    try {
      const view = await this.ctx.api("GET", `/customers/${encodeURIComponent(customerId)}/view`);
      this.setView(view);
    } catch (err) {
      if (!this.views.has(customerId)) {
        clear(this.customerBody).append(h("p", { class: "error-text" }, this.ctx.t("error", { message: err.message })));
      }
    }
  }

  onReconnect() {
    this.watched.clear();
    if (this.ctx.activeId) this.showSession(this.ctx.activeId);
  }

  onCustomerView(frame) {
    this.setView(frame.view);
  }

  setView(view) {
    this.views.set(view.customer.id, view);
    for (const ticket of view.tickets) this.watch(ticket.id);
    if (view.customer.id === this.customerId) this.renderCustomer();
  }

  // Live changes of the customer's tickets come as `ticket` frames.
  watch(ticketId) {
    if (this.watched.has(ticketId) || this.watched.size >= 100) return;
    this.watched.add(ticketId);
    this.ctx.link.request({ type: "watch_ticket", ticket_id: ticketId }).catch(() => this.watched.delete(ticketId));
  }

  onTicket(frame) {
    const ticket = frame.ticket;
    const view = this.views.get(ticket.customer_id);
    if (view) {
      const index = view.tickets.findIndex((other) => other.id === ticket.id);
      if (index >= 0) view.tickets[index] = ticket;
      else view.tickets.unshift(ticket);
      if (ticket.customer_id === this.customerId) this.renderCustomer();
    }
  }

  onSessionEvent(frame) {
    if (frame.type === "typing") return;
    clearTimeout(this.diagTimer);
    this.diagTimer = setTimeout(() => this.loadDiagnostics(frame.session), 300);
  }

  rerender() {
    this.renderCustomer();
    this.renderDiagnostics();
    this.renderHits();
  }

  renderCustomer() {
    const t = this.ctx.t;
    const lang = this.ctx.i18n.lang;
    const card = this.card;
    if (!card) return this.showNothing();
    const view = this.views.get(this.customerId);
    const fallback = card.info.customer || {};
    const customer = view ? view.customer : fallback;
    const body = clear(this.customerBody);
    body.append(h("div", { class: "profile" },
      h("h3", { id: "customer-name" }, customer.display_name || customer.id || ""),
      h("dl", { class: "facts" },
        h("dt", {}, t("tier")), h("dd", { id: "customer-tier" }, customer.tier === "vip" ? h("span", { class: "badge vip" }, "VIP") : customer.tier || ""),
        customer.tags && customer.tags.length ? [h("dt", {}, t("tags")), h("dd", {}, customer.tags.join(", "))] : null)));
    if (!view) return;
    body.append(
      h("h4", {}, t("identities")),
      h("ul", { id: "identities", class: "chips" }, customer.identities.map((identity) =>
        h("li", { class: "badge channel", dataset: { channel: identity.channel } }, `${this.ctx.channelName(identity.channel)}: ${identity.external_id}`))),
      h("h4", {}, t("history_30d")),
      h("ol", { id: "interactions", class: "interactions" }, view.interactions.map((row) =>
        h("li", { dataset: { session: row.session_id, channel: row.channel } },
          h("span", { class: "badge channel", dataset: { channel: row.channel } }, this.ctx.channelName(row.channel)), " ",
          h("time", { class: "muted" }, formatTime(row.at, lang)), " ",
          h("span", {}, row.summary)))),
      h("h4", {}, t("tickets")),
      view.tickets.length ? h("ul", { id: "customer-tickets", class: "tickets" }, view.tickets.map((ticket) => this.ticketItem(ticket)))
        : h("p", { class: "muted" }, t("no_tickets")));
    if (view.last_summary) {
      const summary = view.last_summary;
      body.append(h("h4", {}, t("last_summary")),
        h("div", { id: "last-summary", class: "summary" },
          h("p", {}, `${t("outcome")}: ${summary.outcome} · ${t("topics")}: ${summary.topics.join(", ")}`),
          h("ul", {}, summary.key_sentences.map((sentence) => h("li", {}, sentence)))));
    }
  }

  ticketItem(ticket) {
    const t = this.ctx.t;
    const selectId = `ticket-status-${ticket.id}`;
    const select = h("select", { id: selectId, class: "ticket-status", dataset: { ticketId: ticket.id } },
      STATUSES.map((status) => h("option", { value: status, selected: status === ticket.status }, t(`status_${status}`))));
    select.disabled = ticket.status === "closed";
    select.addEventListener("change", () => this.setStatus(ticket.id, select.value, select));
    return h("li", { dataset: { ticketId: ticket.id, status: ticket.status } },
      h("div", {}, h("strong", {}, ticket.id), " ", ticket.subject),
      h("label", { class: "visually-hidden", for: selectId }, t("ticket_status_of", { id: ticket.id })),
      h("span", { class: `badge status-${ticket.status}` }, t(`status_${ticket.status}`)), " ",
      select);
  }

  async setStatus(ticketId, status, select) {
    select.disabled = true;
    try {
      const detail = await this.ctx.api("PATCH", `/tickets/${encodeURIComponent(ticketId)}`, { status });
      this.onTicket({ ticket: detail.ticket });
      announce(this.ctx.t("ticket_changed", { id: ticketId, status: this.ctx.t(`status_${status}`) }));
    } catch (err) {
      select.disabled = false;
      announce(this.ctx.t("error", { message: err.message }));
    }
  }

  async createTicket() {
    const t = this.ctx.t;
    const error = document.getElementById("ticket-error");
    error.textContent = "";
    if (!this.ctx.activeId) {
      error.textContent = t("ticket_needs_session");
      return;
    }
    const body = {
      session_id: this.ctx.activeId,
      subject: document.getElementById("ticket-subject").value.trim(),
      description: document.getElementById("ticket-description").value.trim(),
    };
    const priority = document.getElementById("ticket-priority");
    if (priority) body.priority = priority.value;
    const tags = document.getElementById("ticket-tags");
    if (tags && tags.value.trim()) body.tags = tags.value.split(/[,，]/).map((tag) => tag.trim()).filter(Boolean);
    try {
      const ticket = await this.ctx.api("POST", "/tickets", body);
      document.getElementById("ticket-form").reset();
      this.onTicket({ ticket });
      this.watch(ticket.id);
      announce(t("ticket_created", { id: ticket.id }));
    } catch (err) {
      error.textContent = t("error", { message: err.message });
    }
  }

  async search() {
    const query = document.getElementById("kb-query").value.trim();
    if (!query) return;
    try {
      this.kbHits = await this.ctx.api("GET", `/kb/search?q=${encodeURIComponent(query)}&limit=5`);
    } catch (err) {
      this.kbHits = [];
      announce(this.ctx.t("error", { message: err.message }));
    }
    this.kbSearched = true;
    this.renderHits();
  }

  renderHits() {
    const t = this.ctx.t;
    const list = clear(document.getElementById("kb-results"));
    if (this.kbSearched && this.kbHits.length === 0) list.append(h("li", { class: "muted" }, t("kb_none")));
    for (const hit of this.kbHits) {
      list.append(h("li", { dataset: { articleId: hit.id } },
        h("div", { class: "title" }, hit.title, " ", h("span", { class: "badge" }, hit.language)),
        h("div", { class: "snippet" }, highlighted(hit.snippet)),
        h("button", {
          type: "button",
          class: "insert-article",
          "aria-label": t("insert_article", { title: hit.title }),
          onclick: () => this.insertArticle(hit.id),
        }, t("insert"))));
    }
  }

  async insertArticle(articleId) {
    const card = this.card;
    if (!card) return announce(this.ctx.t("ticket_needs_session"));
    try {
      const article = await this.ctx.api("GET", `/kb/articles/${encodeURIComponent(articleId)}`);
      card.insertText(article.body);
      if (this.ctx.usage) this.ctx.usage("kb_article_inserted");
    } catch (err) {
      announce(this.ctx.t("error", { message: err.message }));
    }
  }

  async loadDiagnostics(sessionId) {
    if (!this.diagBody.isConnected || !sessionId) return;
    try {
      this.diagnostics = await this.ctx.api("GET", `/sessions/${sessionId}/diagnostics`);
    } catch (err) {
      this.diagnostics = { error: err.message };
    }
    this.renderDiagnostics();
  }

  renderDiagnostics() {
    if (!this.diagBody.isConnected || !this.diagnostics) return;
    const t = this.ctx.t;
    const body = clear(this.diagBody);
    const diag = this.diagnostics;
    if (diag.error) return body.append(h("p", { class: "error-text" }, t("error", { message: diag.error })));
    if (diag.session.id !== this.ctx.activeId) return;
    const routing = diag.routing;
    body.append(
      h("h3", {}, t("routing_decision")),
      h("p", {}, `${t("rule")}: `, h("code", { id: "routing-rule" }, routing.rule), h("span", { class: "muted" }, ` (${routing.rules_file})`)),
      h("ol", { id: "routing-steps" }, routing.steps.map((step) => h("li", { dataset: { group: step.group } },
        t("step_line", {
          group: step.group,
          priority: step.priority,
          timeout: step.timeout_ms ? t("step_timeout", { secs: Math.round(step.timeout_ms / 1000) }) : "",
        }),
        step.agent_condition ? h("code", {}, ` ${step.agent_condition}`) : null))),
      h("dl", { class: "facts" }, Object.entries(routing.inputs).map(([key, value]) => [h("dt", {}, key), h("dd", {}, value)])),
      h("h3", {}, t("timeline")),
      h("ol", { id: "timeline", class: "timeline" }, diag.events.map((event) => h("li", { dataset: { seq: event.seq, type: event.type } },
        h("span", { class: "seq" }, `#${event.seq}`), " ",
        h("time", { class: "muted" }, formatTime(event.at, this.ctx.i18n.lang)), " ",
        h("strong", {}, event.type), " ",
        h("span", { class: "muted" }, eventDetail(event))))));
  }
}

// The interesting fields of a session event (PROTOCOL.md §2), in one line.
function eventDetail(event) {
  const skip = new Set(["type", "session", "seq", "at", "body"]);
  const parts = Object.entries(event).filter(([key]) => !skip.has(key)).map(([key, value]) => `${key}=${value}`);
  if (event.body) parts.push(`“${event.body.length > 40 ? event.body.slice(0, 40) + "…" : event.body}”`);
  return parts.join(" ");
}

// A search snippet (HTML-escaped by the server, matches in <b>) as nodes,
// without handing any markup to innerHTML.
function highlighted(snippet) {
  const nodes = [];
  const parts = String(snippet).split(/(<b>|<\/b>)/);
  let bold = false;
  for (const part of parts) {
    if (part === "<b>") { bold = true; continue; }
    if (part === "</b>") { bold = false; continue; }
    const text = unescapeHtml(part);
    if (text) nodes.push(bold ? h("mark", {}, text) : text);
  }
  return nodes;
}

function unescapeHtml(text) {
  return text.replace(/&(lt|gt|amp|quot|#39|#x27);/g, (_, name) =>
    ({ lt: "<", gt: ">", amp: "&", quot: "\"", "#39": "'", "#x27": "'" })[name]);
}
