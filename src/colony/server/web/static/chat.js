// Colony chat: start a turn through the JSON API and render its Server-Sent Events as they arrive.
// Everything that comes from the model, a tool or the user is inserted with textContent — never as
// HTML — so a hostile tool output or prompt cannot inject markup. The one exception is an answer's
// markdown once its segment is complete: the event that ends it carries `text_html`, which the
// server rendered with raw HTML off and sanitised by an allow-list (colony/server/markdown.py).
// The markup built here mirrors the server-rendered transcript (templates/_macros.html) so both
// share one stylesheet.
(function () {
  "use strict";

  const root = document.getElementById("chat");
  if (!root) return;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const list = document.getElementById("transcript");
  const form = document.getElementById("composer");
  const input = document.getElementById("prompt");
  const sendBtn = document.getElementById("send");
  const cancelBtn = document.getElementById("cancel");
  const errorBox = document.getElementById("chat-error");
  const titleEl = document.getElementById("session-title");

  let sessionId = root.dataset.sessionId || null;
  let turnId = null;
  let cancelPending = false;
  let source = null;
  let bubble = null; // the assistant bubble receiving text deltas
  const tools = new Map(); // call_id -> {li, badge, meta, card}

  // -- small DOM helpers -------------------------------------------------------------------------
  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function nearBottom() {
    return window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 200;
  }
  function toBottom() {
    window.scrollTo(0, document.documentElement.scrollHeight);
  }
  // Append to the transcript; rows go before a still-empty "thinking" bubble so it stays last.
  function add(node) {
    const stick = nearBottom();
    const intro = list.querySelector(".intro");
    if (intro) intro.remove();
    if (bubble && node !== bubble && bubble.textContent === "") list.insertBefore(node, bubble);
    else list.appendChild(node);
    if (stick) toBottom();
    return node;
  }
  function showError(text) {
    errorBox.hidden = !text;
    errorBox.textContent = text || "";
  }
  function pretty(value) {
    try { return JSON.stringify(value, null, 2); } catch (e) { return String(value); }
  }
  function errorText(r) {
    return (r.data && r.data.message) || ("The node answered HTTP " + r.status + ".");
  }

  async function api(method, url, body) {
    const init = {
      method: method,
      credentials: "same-origin",
      headers: { "Accept": "application/json", "X-CSRF-Token": csrf },
    };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const resp = await fetch(url, init);
    let data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    if (resp.status === 401) {
      window.location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
    }
    return { ok: resp.ok, status: resp.status, data: data };
  }

  function setRunning(on) {
    sendBtn.disabled = on;
    cancelBtn.hidden = !on;
    if (!on) cancelPending = false;
    if (!cancelPending) {
      cancelBtn.disabled = false;
      cancelBtn.textContent = "Cancel";
    }
  }

  // -- the answer bubble ---------------------------------------------------------------------------
  function startBubble() {
    if (bubble) return bubble;
    bubble = el("li", "msg assistant streaming");
    add(bubble);
    return bubble;
  }
  function endBubble(html) {
    if (!bubble) return;
    if (bubble.textContent === "") bubble.remove();
    else {
      bubble.classList.remove("streaming");
      if (html) showMarkdown(bubble, html, bubble.textContent);
    }
    bubble = null;
  }
  // The only place HTML enters the page: the server's sanitised rendering of an answer.
  function showMarkdown(node, html, source) {
    node.innerHTML = html;
    node.classList.add("md");
    node.dataset.source = source;
  }

  // -- tool rows and approval cards ----------------------------------------------------------------
  function toolRow(d) {
    const li = el("li", "tool");
    li.dataset.callId = d.call_id;
    const head = el("div", "tool-head");
    const badge = el("span", "badge running", "running");
    const meta = el("span", "tool-meta");
    head.append(el("span", "tool-name", d.name), badge, meta);
    li.append(head, el("pre", "tool-args", pretty(d.arguments)));
    const row = { li: li, badge: badge, meta: meta, card: null, timer: null };
    tools.set(d.call_id, row);
    add(li);
    return row;
  }
  function rowFor(d) {
    return tools.get(d.call_id) || toolRow({ call_id: d.call_id, name: d.name || d.tool, arguments: d.arguments || {} });
  }
  function setBadge(row, cls, text) {
    row.badge.className = "badge " + cls;
    row.badge.textContent = text;
  }

  function approvalCard(d) {
    endBubble();
    const row = rowFor(d);
    row.li.classList.add("waiting");
    setBadge(row, "pending", "needs approval");
    const card = el("div", "approval");
    card.dataset.approvalId = d.approval_id;
    card.append(el("div", "question", "Allow " + d.tool + " to run with these arguments?"));
    const why = d.reason + (d.risk && d.risk.length ? " · risk: " + d.risk.join(", ") : "");
    card.append(el("div", "reason", why));
    const actions = el("div", "actions");
    const allow = el("button", "primary", "Allow");
    const deny = el("button", "danger", "Deny");
    allow.type = deny.type = "button";
    const left = el("span", "muted small");
    actions.append(allow, deny, left);
    card.append(actions);
    row.li.append(card);
    row.card = card;
    let deadline = Date.now() + d.timeout_s * 1000;
    const tick = function () {
      const s = Math.max(0, Math.round((deadline - Date.now()) / 1000));
      left.textContent = s > 0 ? "denied automatically in " + s + " s" : "expiring…";
    };
    tick();
    row.timer = window.setInterval(tick, 1000);
    // A replayed request (after a reload) started earlier: take its deadline from the server.
    // (The event-based deadline is never earlier than the real one, so the smaller wins.)
    serverDeadline(d.approval_id).then(function (t) { if (t !== null) { deadline = Math.min(t, deadline); tick(); } });
    allow.addEventListener("click", function () { decide(row, d.approval_id, "allow"); });
    deny.addEventListener("click", function () { decide(row, d.approval_id, "deny"); });
    if (nearBottom()) toBottom();
    allow.focus({ preventScroll: true });
  }

  // The approval's expiry in this browser's clock, corrected by the server's Date header.
  async function serverDeadline(approvalId) {
    try {
      const resp = await fetch("/api/v1/approvals?status=pending&limit=500", {
        credentials: "same-origin", headers: { "Accept": "application/json" },
      });
      if (!resp.ok) return null;
      const serverNow = Date.parse(resp.headers.get("Date") || "");
      const data = await resp.json();
      const item = data.items.find(function (a) { return a.id === approvalId; });
      if (!item || isNaN(serverNow)) return null;
      return Date.now() + (Date.parse(item.expires_at) - serverNow);
    } catch (e) {
      return null;
    }
  }

  async function decide(row, approvalId, decision) {
    const buttons = row.card.querySelectorAll("button");
    buttons.forEach(function (b) { b.disabled = true; });
    let r;
    try {
      r = await api("POST", "/api/v1/approvals/" + encodeURIComponent(approvalId), { decision: decision });
    } catch (e) {
      buttons.forEach(function (b) { b.disabled = false; });
      settleNote(row, "Could not reach the node: " + e.message);
      return;
    }
    if (r.ok) settle(row, r.data.status);
    else if (r.status === 409) settle(row, "expired", "This request expired or was already decided.");
    else {
      buttons.forEach(function (b) { b.disabled = false; });
      settleNote(row, errorText(r));
    }
  }
  function settleNote(row, text) {
    let note = row.card.querySelector(".card-error");
    if (!note) { note = el("div", "small error-line card-error"); row.card.append(note); }
    note.textContent = text;
  }
  const DECISION_TEXT = {
    approved: "Allowed",
    allow: "Allowed",
    denied: "Denied",
    expired: "Expired — nobody answered in time, so it was denied",
  };
  function settle(row, status, text) {
    if (!row.card || row.card.classList.contains("decided")) return;
    if (row.timer) window.clearInterval(row.timer);
    row.card.classList.add("decided");
    const actions = row.card.querySelector(".actions");
    if (actions) actions.remove();
    const note = row.card.querySelector(".card-error");
    if (note) note.remove();
    row.card.append(el("div", "decision", text || DECISION_TEXT[status] || status));
  }

  function finishTool(d) {
    const row = rowFor(d);
    row.li.classList.remove("waiting");
    if (d.outcome !== "ok") row.li.classList.add("failed");
    setBadge(row, d.outcome, d.outcome);
    row.meta.textContent = "";
    if (d.approval) row.meta.append(el("span", null, d.approval));
    row.meta.append(el("span", null, Math.round(d.latency_ms) + " ms"));
    if (row.card) settle(row, d.approval);
    if (d.content) {
      const details = el("details");
      details.append(el("summary", null, "result"), el("pre", "tool-result", d.content));
      row.li.append(details);
    }
    let running = false;
    tools.forEach(function (t) { if (t.badge.classList.contains("running") || t.li.classList.contains("waiting")) running = true; });
    if (!running) startBubble(); // the model is thinking again
  }

  function finishTurn(d) {
    if (d.text) {
      if (bubble && bubble.textContent !== "") bubble.textContent = d.text;
      else if (!lastIsAnswer(d.text)) { endBubble(); startBubble().textContent = d.text; }
    }
    endBubble(d.text_html);
    tools.forEach(function (row) { settle(row, "expired", "No longer pending: the turn ended."); });
    let line = d.status;
    if (d.tool_calls) line += " · " + d.tool_calls + " tool call" + (d.tool_calls === 1 ? "" : "s");
    const tokens = d.usage ? d.usage.prompt_tokens + d.usage.completion_tokens : 0;
    if (tokens) line += " · " + tokens + " tokens";
    if (d.error) line += " — " + d.error;
    const status = add(el("li", "turn-status " + d.status, line));
    status.setAttribute("role", "status");
    stop();
  }
  function lastIsAnswer(text) {
    const last = list.lastElementChild;
    return last && last.classList.contains("assistant") && (last.dataset.source || last.textContent) === text;
  }

  // -- the event stream ----------------------------------------------------------------------------
  function stop() {
    if (source) source.close();
    source = null;
    turnId = null;
    bubble = null;
    tools.forEach(function (row) { if (row.timer) window.clearInterval(row.timer); });
    tools.clear();
    setRunning(false);
    input.focus();
  }

  function follow(id, url) {
    turnId = id;
    setRunning(true);
    // Cancel was pressed while the turn was still being created: carry it out now.
    if (cancelPending) requestCancel();
    startBubble();
    source = new EventSource(url);
    const on = function (kind, handler) {
      source.addEventListener(kind, function (ev) {
        let data;
        try { data = JSON.parse(ev.data); } catch (e) { return; }
        handler(data);
      });
    };
    on("text_delta", function (d) {
      const stick = nearBottom();
      startBubble().textContent += d.text;
      if (stick) toBottom();
    });
    on("tool_call_started", function (d) { endBubble(d.text_html); toolRow(d); });
    on("approval_requested", approvalCard);
    on("tool_call_finished", finishTool);
    on("notice", function (d) { add(el("li", "notice", d.message)); });
    on("turn_finished", finishTurn);
    source.onerror = function () {
      // A dropped connection reconnects by itself (with Last-Event-ID); a refused one is closed.
      if (source && source.readyState === EventSource.CLOSED) {
        endBubble();
        stop();
        showError("Lost the turn's event stream. Reload the page to see how it ended.");
      }
    };
  }

  // -- the composer ----------------------------------------------------------------------------------
  function autosize() {
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight, 192) + "px";
  }

  form.addEventListener("submit", async function (ev) {
    ev.preventDefault();
    const prompt = input.value.trim();
    if (!prompt || turnId) return;
    showError(null);
    setRunning(true);
    let r;
    try {
      r = await api("POST", "/api/v1/chat", { prompt: prompt, session_id: sessionId });
    } catch (e) {
      setRunning(false);
      showError("Could not reach the node: " + e.message);
      return;
    }
    if (!r.ok) {
      setRunning(false);
      showError(errorText(r));
      return;
    }
    input.value = "";
    autosize();
    add(el("li", "msg user", prompt));
    if (!sessionId && titleEl) titleEl.textContent = prompt.slice(0, 80);
    sessionId = r.data.session_id;
    root.dataset.sessionId = sessionId;
    history.replaceState(null, "", "/?session=" + encodeURIComponent(sessionId));
    follow(r.data.turn_id, r.data.events_url);
  });

  input.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      if (!turnId) form.requestSubmit();
    }
  });
  input.addEventListener("input", autosize);

  async function requestCancel() {
    cancelPending = false;
    const r = await api("POST", "/api/v1/turns/" + encodeURIComponent(turnId) + "/cancel");
    if (!r.ok && r.status !== 409) {
      cancelBtn.disabled = false;
      cancelBtn.textContent = "Cancel";
      showError(errorText(r));
    }
  }

  cancelBtn.addEventListener("click", function () {
    cancelBtn.disabled = true;
    cancelBtn.textContent = "Cancelling…";
    // The button shows as soon as Send is pressed, before the node has answered with the turn id;
    // a click in that window is remembered rather than lost.
    if (turnId) requestCancel();
    else cancelPending = true;
  });

  // A turn of this session still running on the server: replay it from its first event.
  if (list.dataset.liveTurn) {
    const id = list.dataset.liveTurn;
    follow(id, "/api/v1/turns/" + encodeURIComponent(id) + "/events");
  }
  if (list.children.length) toBottom();
})();
