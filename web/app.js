// The bread page: plain JavaScript, no build step, no other origin. Served by the Envoy edge,
// so every call below goes to this same origin, signed in with `Authorization: Bearer <token>`.
"use strict";

const TOKEN_KEY = "bread.token";
const POLL_MS = 1000;
const ROLES = ["customer", "baker", "operator"];

const $ = (selector) => document.querySelector(selector);
const NOTICE_MS = 8000; // how long good news stays; errors stay until dismissed
const state = {token: null, claims: null, timer: null, polling: false, noticeTimer: null};

// ------------------------------------------------------------------ talking to the API

class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail || `HTTP ${status}`);
    this.status = status; // 0: never reached the server
    this.code = code;     // the gRPC code of the JSON error shape, when there is one
    this.detail = detail; // the server's own words, plain text
  }
}

async function api(path, {method = "GET", body, headers = {}} = {}) {
  const init = {method, headers: {...headers}, cache: "no-store"};
  if (state.token) init.headers.authorization = `Bearer ${state.token}`;
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, undefined, "");
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const detail = data && typeof data.message === "string" ? plain(data.message) : "";
    throw new ApiError(response.status, data && data.code, detail);
  }
  return data;
}

// A server message fit to show a person: one short line of text, field names in words.
function plain(message) {
  const line = message.replace(/\s+/g, " ").trim();
  if (!line || line.length > 200 || /^[[{]/.test(line)) return "";
  return line.replace(/\bqty\b/g, "the quantity").replace(/\bcustomer_id\b/g, "the customer");
}

const sentence = (text) => text.charAt(0).toUpperCase() + text.slice(1).replace(/[.\s]*$/, ".");

// What went wrong, for a person: `doing` is what they tried ("Placing the order").
function explain(error, doing) {
  if (!(error instanceof ApiError)) return `${doing} failed in this page: ${error.message}.`;
  const said = error.detail ? ` (${error.detail})` : "";
  switch (error.status) {
    case 0:
      return `${doing} failed: bread cannot be reached. Check your connection and try again.`;
    case 400:
      return error.detail
        ? `${doing} did not work: ${sentence(error.detail)}`
        : `${doing} did not work: the request was not accepted. Please check what you entered.`;
    case 401:
      return "You are signed out (or your sign-in has expired). Please sign in again.";
    case 403:
      return `${doing} is not allowed for you (signed in as ${whoami()}).`;
    case 404:
      return `${doing} did not work: it does not exist, or it is not yours.`;
    case 409:
      return `${doing} did not work: it changed meanwhile. The list is up to date now.`;
    case 413:
      return `${doing} did not work: that was too much text.`;
    case 429:
      return "Too many requests. Please wait a moment and try again.";
    case 503:
      return doing === "Placing the order"
        ? "Payment is unavailable right now, so the order was not placed and you are not " +
          "charged. Please try again in a moment."
        : `${doing} failed: bread is busy or briefly unavailable. Please try again in a moment.`;
    case 504:
      return `${doing} took too long to answer. Check your orders before trying again.`;
    default:
      return `${doing} failed: something went wrong on our side (HTTP ${error.status})${said}. ` +
        "Please try again.";
  }
}

function randomKey() {
  if (crypto.randomUUID) return crypto.randomUUID(); // secure contexts: localhost, https
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

// ------------------------------------------------------------------ messages

function notify(text, kind = "info") {
  clearTimeout(state.noticeTimer);
  $("#notice").hidden = false;
  $("#notice").className = `notice ${kind}`;
  $("#notice-text").textContent = text;
  if (kind !== "error") state.noticeTimer = setTimeout(clearNotice, NOTICE_MS);
}

function clearNotice() {
  $("#notice").hidden = true;
  $("#notice-text").textContent = "";
}

// Runs an action from a button or form: one at a time, and any failure told in words.
async function act(button, doing, action) {
  if (button) button.disabled = true;
  try {
    await action();
  } catch (error) {
    notify(explain(error, doing), "error");
    if (error instanceof ApiError && error.status === 401) signOut(false);
  } finally {
    if (button) button.disabled = false;
  }
}

// ------------------------------------------------------------------ signing in

function claimsOf(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const json = decodeURIComponent(
      [...atob(part)].map((c) => `%${c.charCodeAt(0).toString(16).padStart(2, "0")}`).join(""),
    );
    const claims = JSON.parse(json);
    return typeof claims.sub === "string" && ROLES.includes(claims.role) ? claims : null;
  } catch {
    return null;
  }
}

const expired = (claims) => typeof claims.exp === "number" && claims.exp * 1000 <= Date.now();
const whoami = () => (state.claims ? `${state.claims.sub}, ${state.claims.role}` : "nobody");
const role = () => (state.claims ? state.claims.role : null);
const orders = () => ["customer", "operator"].includes(role());
const bakes = () => ["baker", "operator"].includes(role());

function useToken(token) {
  const claims = claimsOf(token);
  if (!claims) throw new Error("that is not a bread token (it needs a sub and a role)");
  if (expired(claims)) throw new Error("that token has expired");
  state.token = token;
  state.claims = claims;
  sessionStorage.setItem(TOKEN_KEY, token);
  show();
  poll();
}

function signOut(clear = true) {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  state.claims = null;
  clearTimeout(state.timer);
  $("#mypage-table tbody").replaceChildren();
  $("#ticket-table tbody").replaceChildren();
  $("#order-result").textContent = "";
  $("#sync").textContent = "";
  if (clear) clearNotice();
  show();
}

function show() {
  const current = role();
  document.body.className = current ? `role-${current}` : "signed-out";
  $("#signin").hidden = Boolean(current);
  $("#who").hidden = !current;
  $("#who-name").textContent = current ? state.claims.sub : "";
  $("#who-role").textContent = current || "";
  $("#order-form").hidden = !orders();
  $("#mypage").hidden = !orders();
  $("#bakery").hidden = !bakes();
}

$("#signin-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const sub = $("#signin-name").value.trim();
  const chosen = $("#signin-role").value;
  if (!sub) {
    notify("Please type a name to sign in with.", "error");
    return;
  }
  act($("#signin-button"), "Signing in", async () => {
    let answer;
    try {
      answer = await api("/auth/dev-token", {method: "POST", body: {sub, role: chosen}});
    } catch (error) {
      if (error instanceof ApiError && [401, 404].includes(error.status)) {
        throw new Error("there is no development sign-in here; sign in with a token instead");
      }
      throw error;
    }
    clearNotice();
    useToken(answer.token);
  });
});

$("#token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  act(null, "Signing in", async () => {
    useToken($("#token-input").value.trim());
    $("#token-input").value = "";
    clearNotice();
  });
});

$("#sign-out").addEventListener("click", () => signOut());
$("#notice-close").addEventListener("click", clearNotice);

// ------------------------------------------------------------------ the menu and ordering

const won = (amount) => `₩${Number(amount).toLocaleString("en-US")}`;
const short = (id) => String(id).slice(0, 8);
const bare = (status) => String(status || "").replace(/^[A-Z]+_STATUS_/, "");
const clock = (time) => (time ? new Date(time).toLocaleTimeString("en-GB") : "");

async function loadMenu() {
  try {
    const {items} = await api("/menu");
    $("#menu-table tbody").replaceChildren(...items.map((item) => {
      const tr = document.createElement("tr");
      tr.dataset.item = item.name;
      tr.insertCell().textContent = item.name;
      const price = tr.insertCell();
      price.className = "num";
      price.textContent = won(item.price);
      return tr;
    }));
    $("#order-item").replaceChildren(
      ...items.map((item) => new Option(`${item.name} (${won(item.price)} each)`, item.name)),
    );
  } catch (error) {
    notify(explain(error, "Loading the menu"), "error");
  }
}

$("#order-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("#order-qty").value.trim();
  const result = $("#order-result");
  result.textContent = "";
  result.className = "result";
  delete result.dataset.orderId;
  if (!/^-?\d+$/.test(text)) {
    notify("Please enter the quantity as a whole number, like 2.", "error");
    return;
  }
  act($("#order-button"), "Placing the order", async () => {
    // A fresh key per order: a retry of this request (by Envoy or a flaky network) gives
    // back this same order instead of a second charge.
    const order = await api("/orders", {
      method: "POST",
      headers: {"idempotency-key": randomKey()},
      body: {item: $("#order-item").value, qty: Number(text)},
    });
    clearNotice();
    result.dataset.orderId = order.id;
    result.textContent =
      `Order ${short(order.id)} placed: ${order.qty} × ${order.item}, ${won(order.price)}, ` +
      `${bare(order.status).toLowerCase()}.`;
    poll();
  });
});

// ------------------------------------------------------------------ Mypage and the bakery

const HAPPENING = {
  PENDING: "Being paid",
  PAID: "Paid, waiting for the bakery",
  CONFIRMED: "The bakery is baking it",
  CANCELING: "Cancel asked, waiting for the bakery",
  CANCELED: "Canceled",
  DELIVERED: "Delivered",
  REJECTED: "The bakery could not take it",
  FAILED: "Not placed",
};

// Why an order failed, from order's reason ("payment UNAVAILABLE: no healthy upstream", ...).
function failedBecause(reason) {
  if (/^payment UNAVAILABLE\b/.test(reason)) return "payment was unavailable, nothing was charged";
  if (/^payment (DEADLINE_EXCEEDED\b|outcome unknown)/.test(reason)) {
    return "payment took too long; any charge is refunded";
  }
  const declined = /^payment FAILED_PRECONDITION: (.*)$/.exec(reason);
  if (declined) return `payment declined (${declined[1]})`;
  return reason;
}

function happening(mypage) {
  const status = mypage.orderStatus;
  let text = HAPPENING[status] || status;
  if (mypage.paymentStatus === "CANCELED" && ["CANCELED", "REJECTED", "FAILED"].includes(status)) {
    text += ", refunded";
  }
  const reason = status === "FAILED" ? failedBecause(mypage.reason) : mypage.reason;
  return reason ? `${text}: ${reason}` : text;
}

// Status names as the services say them, but a canceled payment is, to a person, a refund.
const SHOWN = {payment: {CANCELED: "REFUNDED"}};

function badge(cell, status, kind) {
  const said = bare(status);
  const name = (SHOWN[kind] || {})[said] || said || "—";
  let span = cell.firstChild;
  if (!span) {
    span = document.createElement("span");
    cell.append(span);
  }
  if (span.textContent !== name) {
    span.textContent = name;
    span.className = `badge ${said || "none"}`;
    span.title = said ? `${kind || "status"}: ${said}` : "";
  }
}

function setText(cell, text) {
  if (cell.textContent !== text) cell.textContent = text;
}

// Rows are kept and updated in place, keyed by order id: a poll never replaces a button
// someone is about to press.
function syncRows(tbody, items, key, columns, fill) {
  const wanted = new Set(items.map(key));
  for (const tr of [...tbody.rows]) if (!wanted.has(tr.dataset.orderId)) tr.remove();
  items.forEach((item, index) => {
    let tr = tbody.querySelector(`tr[data-order-id="${CSS.escape(key(item))}"]`);
    if (!tr) {
      tr = document.createElement("tr");
      tr.dataset.orderId = key(item);
      for (const name of columns) tr.insertCell().className = name;
    }
    if (tbody.rows[index] !== tr) tbody.insertBefore(tr, tbody.rows[index] || null);
    fill(tr, item);
  });
}

function actions(cell, wanted) {
  const have = [...cell.querySelectorAll("button")].map((b) => b.dataset.action).join(",");
  if (have === wanted.map(([name]) => name).join(",")) return;
  cell.replaceChildren(...wanted.map(([name, label, handler, style]) => {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.action = name;
    button.textContent = label;
    if (style) button.className = style;
    button.addEventListener("click", () => handler(button));
    return button;
  }));
}

function cancel(mypage) {
  return (button) => act(button, `Canceling order ${short(mypage.orderId)}`, async () => {
    await api(`/orders/${encodeURIComponent(mypage.orderId)}:cancel`, {
      method: "POST",
      body: {reason: "canceled on the web page"},
    });
    notify(`Cancel asked for order ${short(mypage.orderId)}: waiting for the bakery's answer.`);
    poll();
  });
}

const MYPAGE_COLUMNS = [
  "order", "customer-col", "item", "qty num", "price num", "status", "payment", "bakery-status",
  "happening", "actions",
];

function showMypages(mypages) {
  syncRows($("#mypage-table tbody"), mypages, (m) => m.orderId, MYPAGE_COLUMNS, (tr, m) => {
    const [order, customer, item, qty, price, status, payment, bakery, what, buttons] = tr.cells;
    setText(order, short(m.orderId));
    order.title = m.orderId;
    order.classList.add("id");
    setText(customer, m.customerId);
    setText(item, m.item);
    setText(qty, String(m.qty));
    setText(price, won(m.price));
    badge(status, m.orderStatus, "order");
    badge(payment, m.paymentStatus, "payment");
    badge(bakery, m.bakeryStatus, "ticket");
    setText(what, happening(m));
    what.title = m.reason;
    actions(buttons, ["PAID", "CONFIRMED"].includes(m.orderStatus)
      ? [["cancel", "Cancel", cancel(m), "danger"]]
      : []);
  });
  $("#mypage-empty").hidden = mypages.length > 0;
}

function ticketAction(ticket, verb, doing, body, done) {
  return (button) => act(button, `${doing} order ${short(ticket.orderId)}`, async () => {
    await api(`/bakeries/${encodeURIComponent(ticket.orderId)}:${verb}`, {method: "POST", body});
    notify(`Order ${short(ticket.orderId)} ${done}.`);
    poll();
  });
}

const TICKET_COLUMNS = ["order", "item", "qty num", "status", "since", "actions"];

function showTickets(tickets) {
  syncRows($("#ticket-table tbody"), tickets, (t) => t.orderId, TICKET_COLUMNS, (tr, t) => {
    const [order, item, qty, status, since, buttons] = tr.cells;
    setText(order, short(t.orderId));
    order.title = t.orderId;
    order.classList.add("id");
    setText(item, t.item);
    setText(qty, String(t.qty));
    badge(status, t.status, "ticket");
    setText(since, clock(t.createTime));
    actions(buttons, bare(t.status) === "OPEN"
      ? [
          ["accept", "Accept", ticketAction(t, "accept", "Accepting", {}, "accepted")],
          ["reject", "Reject", ticketAction(
            t, "reject", "Rejecting", {reason: "the bakery cannot make it today"}, "rejected",
          ), "danger"],
        ]
      : [["deliver", "Delivered", ticketAction(t, "deliver", "Delivering", {}, "delivered")]]);
  });
  $("#bakery-empty").hidden = tickets.length > 0;
}

async function refresh() {
  if (orders()) {
    const {mypages} = await api("/mypages?pageSize=20");
    showMypages(mypages);
  }
  if (bakes()) {
    const lists = await Promise.all(["TICKET_STATUS_OPEN", "TICKET_STATUS_ACCEPTED"].map(
      (status) => api(`/bakeries?status=${status}&pageSize=100`),
    ));
    const tickets = lists.flatMap((list) => list.tickets);
    tickets.sort((a, b) => String(a.createTime).localeCompare(String(b.createTime)));
    showTickets(tickets);
  }
}

// Every second while signed in (and the tab is visible): Mypage follows the saga's events.
async function poll() {
  clearTimeout(state.timer);
  if (!state.token || state.polling) return;
  if (expired(state.claims)) {
    signOut(false);
    notify("Your sign-in has expired. Please sign in again.", "error");
    return;
  }
  state.polling = true;
  try {
    if (!document.hidden) {
      await refresh();
      $("#sync").textContent = `Up to date at ${new Date().toLocaleTimeString("en-GB")}.`;
    }
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      signOut(false);
      notify(explain(error, "Updating"), "error");
    } else {
      $("#sync").textContent = `${explain(error, "Updating")} Retrying…`;
    }
  } finally {
    state.polling = false;
    if (state.token) state.timer = setTimeout(poll, POLL_MS);
  }
}

document.addEventListener("visibilitychange", () => {
  if (!document.hidden) poll();
});

// ------------------------------------------------------------------ start

loadMenu();
const kept = sessionStorage.getItem(TOKEN_KEY);
if (kept) {
  try {
    useToken(kept);
  } catch {
    signOut(false);
    notify("Your sign-in has expired. Please sign in again.", "error");
  }
} else {
  show();
}
