// Courier demo client: plain JavaScript, no build step.
//
// It keeps one WebSocket to the edge that served this page. Every message
// frame carries the recipient's cursor; the client stores the last one per
// user in localStorage and reconnects with it, so the edge replays what was
// missed before going live. Reconnects use full-jitter exponential backoff.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  cfg: { gateway_url: "", pod: "", dev_login: false },
  user: null,
  token: null,
  ws: null,
  attempt: 0,
  timer: null,
  connectedAt: 0,
  seen: new Set(),
};

const BACKOFF_BASE_MS = 500;
const BACKOFF_CAP_MS = 15000;
const STABLE_MS = 10000; // a session this long resets the backoff

function log(text) {
  const line = new Date().toISOString().slice(11, 23) + " " + text + "\n";
  const el = $("log");
  el.textContent = (line + el.textContent).slice(0, 20000);
}

function setStatus(s, text) {
  const el = $("status");
  el.dataset.state = s;
  el.textContent = text || s;
}

const cursorKey = (user) => "courier.cursor." + user;

function showCursor() {
  $("cursor").textContent = localStorage.getItem(cursorKey(state.user)) || "none";
}

async function loadConfig() {
  try {
    const r = await fetch("/config.json");
    state.cfg = await r.json();
  } catch (e) {
    log("config: " + e);
  }
  $("login").hidden = !state.cfg.dev_login;
  $("token-login").hidden = state.cfg.dev_login;
}

async function mintToken(user) {
  const r = await fetch("/dev/token", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ user }),
  });
  const body = await r.json();
  if (!r.ok) throw new Error(body.message || "HTTP " + r.status);
  return body.token;
}

function startSession(user, token) {
  state.user = user;
  state.token = token;
  localStorage.setItem("courier.user", user);
  localStorage.setItem("courier.token", token);
  $("whoami").textContent = "as " + user;
  $("login-box").hidden = true;
  $("app").hidden = false;
  showCursor();
  connect();
}

function wsURL() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  let u = proto + "//" + location.host + "/v1/ws?token=" + encodeURIComponent(state.token);
  const c = localStorage.getItem(cursorKey(state.user));
  if (c) u += "&cursor=" + encodeURIComponent(c);
  return u;
}

function connect() {
  clearTimeout(state.timer);
  const resuming = !!localStorage.getItem(cursorKey(state.user));
  setStatus("connecting", resuming ? "resuming…" : "connecting…");
  const ws = new WebSocket(wsURL());
  state.ws = ws;
  ws.onmessage = (ev) => {
    let f;
    try {
      f = JSON.parse(ev.data);
    } catch (e) {
      log("unreadable frame");
      return;
    }
    switch (f.type) {
      case "hello":
        state.connectedAt = Date.now();
        setStatus("live", "connected to " + f.pod + (f.resumed ? " (resuming)" : ""));
        $("status").dataset.session = f.session_id;
        log("hello from " + f.pod + ", session " + f.session_id);
        break;
      case "synced":
        // Where this session starts (or where its replay ended): resuming
        // from here later misses nothing, even before the first message.
        localStorage.setItem(cursorKey(state.user), f.cursor);
        $("cursor").textContent = f.cursor;
        log("caught up to " + f.cursor);
        break;
      case "message":
        onMessage(ws, f);
        break;
      case "error":
        log("error frame: " + f.code + ": " + f.message);
        break;
      default:
        log("frame " + f.type);
    }
  };
  ws.onclose = (ev) => {
    if (state.ws !== ws) return; // replaced (logout, manual reconnect)
    state.ws = null;
    log("closed " + ev.code + (ev.reason ? " " + ev.reason : ""));
    if (state.connectedAt && Date.now() - state.connectedAt >= STABLE_MS) state.attempt = 0;
    state.connectedAt = 0;
    scheduleReconnect();
  };
}

function scheduleReconnect() {
  // Full jitter: spreads the clients of a drained pod over the window.
  const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** state.attempt);
  const delay = Math.round(Math.random() * ceiling);
  state.attempt++;
  setStatus("reconnecting", "reconnecting in " + (delay / 1000).toFixed(1) + "s");
  state.timer = setTimeout(reconnect, delay);
}

async function reconnect() {
  if (!state.user) return;
  if (state.cfg.dev_login) {
    // Dev tokens are cheap: a fresh one survives an expired session.
    try {
      state.token = await mintToken(state.user);
      localStorage.setItem("courier.token", state.token);
    } catch (e) {
      log("token: " + e.message);
      scheduleReconnect();
      return;
    }
  }
  connect();
}

function onMessage(ws, f) {
  const m = f.message;
  if (!state.seen.has(m.id)) {
    state.seen.add(m.id);
    const li = document.createElement("li");
    li.dataset.id = m.id;
    li.dataset.cursor = f.cursor;
    const from = document.createElement("span");
    from.className = "from";
    from.textContent = m.from + ": ";
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = m.payload && typeof m.payload.text === "string" ? m.payload.text : JSON.stringify(m.payload);
    const meta = document.createElement("span");
    meta.className = "meta";
    meta.textContent = new Date(m.sent_at).toLocaleTimeString() + " · " + m.id;
    li.append(from, text, meta);
    $("messages").append(li);
  }
  localStorage.setItem(cursorKey(state.user), f.cursor);
  showCursor();
  if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "ack", id: m.id }));
}

async function send(to, text) {
  const r = await fetch(state.cfg.gateway_url.replace(/\/$/, "") + "/v1/messages", {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: "Bearer " + state.token },
    body: JSON.stringify({ to, payload: { text } }),
  });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.message || "HTTP " + r.status);
  return body.id;
}

$("login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const user = $("user").value.trim();
  try {
    startSession(user, await mintToken(user));
  } catch (e) {
    $("login-error").textContent = "login failed: " + e.message;
  }
});

$("token-login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  startSession($("token-user").value.trim(), $("token").value.trim());
});

$("send").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const to = $("to").value.split(",").map((s) => s.trim()).filter(Boolean);
  const out = $("send-result");
  out.className = "";
  out.textContent = "sending…";
  try {
    const id = await send(to, $("text").value);
    out.textContent = "accepted " + id;
    out.dataset.id = id;
    $("text").value = "";
  } catch (e) {
    out.className = "error";
    out.textContent = "send failed: " + e.message + " (is the gateway at " + state.cfg.gateway_url + " up, with CORS for this origin?)";
  }
});

$("logout").addEventListener("click", () => {
  const ws = state.ws;
  state.ws = null;
  state.user = null;
  clearTimeout(state.timer);
  if (ws) ws.close(1000, "logout");
  localStorage.removeItem("courier.user");
  localStorage.removeItem("courier.token");
  $("messages").textContent = "";
  state.seen.clear();
  $("app").hidden = true;
  $("login-box").hidden = false;
  setStatus("offline");
});

$("forget").addEventListener("click", () => {
  localStorage.removeItem(cursorKey(state.user));
  showCursor();
});

(async () => {
  await loadConfig();
  const user = localStorage.getItem("courier.user");
  const token = localStorage.getItem("courier.token");
  if (user && token) startSession(user, token);
  document.body.dataset.ready = "1"; // handlers attached, config loaded
})();
