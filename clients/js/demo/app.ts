// Courier demo client, served by ws-edge at "/". Built on the client
// library (../src) and bundled by `npm run demo` into
// services/ws-edge/internal/webclient/static/app.js.
//
// It shows who you are, the connection's state, one conversation per peer,
// ticks on your own messages (✓ accepted, ✓✓ delivered: a recipient's
// session acked it), and every reconnect with what was caught up after it.

import { Courier, CourierError, HttpError, type CloseInfo, type ConnectionState, type Message } from "../src/index.js";

interface Config {
  gateway_url: string;
  pod: string;
  dev_login: boolean;
}

type Tick = "sending" | "accepted" | "delivered" | "failed";

interface Entry {
  id: string;
  peer: string;
  from: string;
  text: string;
  mine: boolean;
  at: string; // sent_at, RFC 3339
  tick?: Tick;
}

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

const app = {
  cfg: { gateway_url: "", pod: "", dev_login: false } as Config,
  user: "",
  client: undefined as Courier | undefined,
  entries: new Map<string, Entry>(), // by message id
  peers: new Map<string, { last: string; unread: number }>(),
  current: "",
  reconnects: 0,
  pendingClose: undefined as CloseInfo | undefined,
};

// ---- log and banner

function log(text: string): void {
  const line = new Date().toISOString().slice(11, 23) + " " + text + "\n";
  const el = $("log");
  el.textContent = (line + (el.textContent ?? "")).slice(0, 20000);
}

function banner(kind: "warn" | "ok" | "", text: string): void {
  const el = $("banner");
  el.hidden = text === "";
  el.dataset.kind = kind;
  el.textContent = text;
}

function showState(state: ConnectionState, delayMs?: number): void {
  const el = $("status");
  el.dataset.state = state;
  const s = app.client?.session;
  el.dataset.session = s?.sessionId ?? "";
  el.dataset.pod = s?.pod ?? "";
  el.textContent =
    state === "open" ? "live on " + (s?.pod ?? "?") :
    state === "reconnecting" ? (delayMs !== undefined ? `reconnecting in ${(delayMs / 1000).toFixed(1)} s` : "reconnecting…") :
    state === "connecting" ? "connecting…" : "offline";
}

// ---- conversations

function textOf(m: Message): string {
  const p = m.payload as { text?: unknown } | null;
  return p && typeof p === "object" && typeof p.text === "string" ? p.text : JSON.stringify(m.payload);
}

function touchPeer(peer: string, at: string, unread: boolean): void {
  const p = app.peers.get(peer) ?? { last: "", unread: 0 };
  if (at > p.last) p.last = at;
  if (unread && peer !== app.current) p.unread++;
  app.peers.set(peer, p);
  if (!app.current) app.current = peer;
}

/** Adds a message of the inbox: live or replayed (unread), or from history. */
function addReceived(m: Message, unread: boolean): void {
  const existing = app.entries.get(m.id);
  if (existing) {
    // A message to oneself arrives too: it proves delivery.
    if (existing.mine && existing.tick !== "delivered") existing.tick = "accepted";
    return;
  }
  const peer = m.from === app.user ? (m.to.find((u) => u !== app.user) ?? app.user) : m.from;
  app.entries.set(m.id, { id: m.id, peer, from: m.from, text: textOf(m), mine: m.from === app.user, at: m.sent_at });
  touchPeer(peer, m.sent_at, unread && m.from !== app.user);
}

function render(): void {
  const list = $("peer-list");
  list.textContent = "";
  const peers = [...app.peers.entries()].sort((a, b) => (a[1].last < b[1].last ? 1 : -1));
  for (const [peer, p] of peers) {
    const li = document.createElement("li");
    li.dataset.peer = peer;
    li.className = peer === app.current ? "current" : "";
    li.textContent = peer === app.user ? peer + " (you)" : peer;
    if (p.unread > 0) {
      const b = document.createElement("span");
      b.className = "unread";
      b.textContent = String(p.unread);
      li.append(b);
    }
    li.addEventListener("click", () => openPeer(peer));
    list.append(li);
  }
  $("conv-title").textContent = app.current ? "Conversation with " + app.current : "Start a conversation";
  $("send").hidden = !app.current;
  const ol = $("messages");
  ol.textContent = "";
  const entries = [...app.entries.values()].filter((e) => e.peer === app.current).sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
  for (const e of entries) {
    const li = document.createElement("li");
    li.dataset.id = e.id;
    li.dataset.mine = String(e.mine);
    if (e.tick) li.dataset.tick = e.tick;
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = e.text;
    const meta = document.createElement("span");
    meta.className = "meta";
    meta.textContent = (e.at ? new Date(e.at).toLocaleTimeString() : "") + (e.mine ? " " + tickText(e.tick) : "");
    meta.title = e.id;
    li.append(text, meta);
    ol.append(li);
  }
  ol.scrollTop = ol.scrollHeight;
}

function tickText(t: Tick | undefined): string {
  return t === "delivered" ? "✓✓" : t === "accepted" ? "✓" : t === "failed" ? "✗" : "…";
}

function openPeer(peer: string): void {
  app.current = peer;
  const p = app.peers.get(peer);
  if (p) p.unread = 0;
  else app.peers.set(peer, { last: "", unread: 0 });
  render();
  $("text").focus();
}

// ---- sending and delivered ticks

async function send(text: string): Promise<void> {
  const client = app.client!;
  const peer = app.current;
  const out = $("send-result");
  out.className = "";
  out.textContent = "sending…";
  try {
    const res = await client.send(peer, { text });
    out.textContent = res.attempts > 1 ? `accepted after ${res.attempts} attempts (one key: stored once)` : "";
    const existing = app.entries.get(res.id);
    const e: Entry = existing ?? { id: res.id, peer, from: app.user, text, mine: true, at: res.acceptedAt };
    e.mine = true;
    e.tick = existing?.tick === "delivered" ? "delivered" : "accepted";
    app.entries.set(res.id, e);
    touchPeer(peer, res.acceptedAt, false);
    render();
    void watchDelivery(res.id);
  } catch (err) {
    out.className = "error";
    out.textContent = "send failed: " + describe(err);
  }
}

/** Polls the message's state until a recipient acked it (or a minute passed). */
async function watchDelivery(id: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (let wait = 250; Date.now() < deadline; wait = Math.min(wait * 2, 4000)) {
    await new Promise((r) => setTimeout(r, wait));
    try {
      const v = await app.client!.get(id);
      if (v.state === "delivered") {
        const e = app.entries.get(id);
        if (e) e.tick = "delivered";
        render();
        return;
      }
    } catch (err) {
      // 404 until the worker stored it: keep waiting.
      if (!(err instanceof HttpError && err.status === 404)) log("state of " + id + ": " + describe(err));
    }
  }
}

function describe(err: unknown): string {
  if (err instanceof HttpError) return `${err.code} (${err.status})${err.retryAfterMs ? `, retry in ${Math.ceil(err.retryAfterMs / 1000)} s` : ""}: ${err.message}`;
  if (err instanceof CourierError) return `${err.code}: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}

// ---- session

async function mintToken(user: string): Promise<string> {
  const r = await fetch("/dev/token", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ user }) });
  const body = (await r.json().catch(() => ({}))) as { token?: string; message?: string };
  if (!r.ok || !body.token) throw new Error(body.message || "HTTP " + r.status);
  return body.token;
}

function start(user: string, token: string | (() => Promise<string>)): void {
  app.user = user;
  localStorage.setItem("courier.user", user);
  $("whoami").textContent = "signed in as " + user;
  $("login-box").hidden = true;
  $("app").hidden = false;
  $("logout").hidden = false;

  const client = new Courier({
    edgeUrl: location.origin,
    gatewayUrl: app.cfg.gateway_url,
    token,
    storage: localStorage, // the cursor survives a reload: the next session resumes
  });
  app.client = client;
  (window as unknown as { courierDemo: unknown }).courierDemo = { client };

  client.on("state", (state, ch) => {
    showState(state, ch.delayMs);
    if (state === "reconnecting" && ch.close) {
      app.pendingClose = ch.close;
      banner("warn", `Connection ${ch.close.opened ? "lost" : "failed"}: ${ch.close.meaning} (${ch.close.code}). Reconnecting in ${((ch.delayMs ?? 0) / 1000).toFixed(1)} s; nothing will be lost.`);
    }
    if (state === "closed" && ch.error) banner("warn", "Disconnected: " + describe(ch.error));
  });
  client.on("close", (c) => log(`closed ${c.code}${c.reason ? " " + c.reason : ""}: ${c.meaning}`));
  client.on("open", (s) => {
    log(`session ${s.sessionId} on ${s.pod}${s.resumed ? ", resuming from " + client.cursor : ""}`);
    if (app.pendingClose) {
      app.reconnects++;
      $("reconnects").textContent = String(app.reconnects);
    }
  });
  client.on("synced", (s) => {
    $("cursor").textContent = s.cursor || "none";
    if (app.pendingClose) {
      banner("ok", `Reconnected to ${client.session?.pod ?? "?"}: ${s.replayed} missed message${s.replayed === 1 ? "" : "s"} caught up, nothing lost.`);
      app.pendingClose = undefined;
    }
    log(`synced at ${s.cursor || "(inbox start)"}; ${s.replayed} replayed`);
  });
  client.on("message", (m, meta) => {
    addReceived(m, true);
    $("cursor").textContent = meta.cursor;
    render();
  });
  client.on("error", (e) => log("error " + e.code + ": " + e.message));
  showState("connecting");
  client.connect();
  void loadHistory(client);
  render();
}

/** The inbox so far (up to 1,000 messages); the session covers what comes after. */
async function loadHistory(client: Courier): Promise<void> {
  let cursor: string | undefined;
  try {
    for (let page = 0; page < 5; page++) {
      const p = await client.sync({ cursor, limit: 200 });
      for (const m of p.messages) addReceived(m, false);
      if (p.messages.length === 0) break;
      cursor = p.nextCursor;
    }
    render();
  } catch (err) {
    log("history: " + describe(err));
  }
}

function logout(): void {
  app.client?.disconnect();
  app.client = undefined;
  localStorage.removeItem("courier.user");
  localStorage.removeItem("courier.token");
  app.entries.clear();
  app.peers.clear();
  app.current = "";
  $("app").hidden = true;
  $("login-box").hidden = false;
  $("logout").hidden = true;
  $("whoami").textContent = "";
  banner("", "");
  showState("closed");
}

// ---- wiring

async function main(): Promise<void> {
  try {
    app.cfg = (await (await fetch("/config.json")).json()) as Config;
  } catch (err) {
    log("config: " + describe(err));
  }
  $("login").hidden = !app.cfg.dev_login;
  $("token-login").hidden = app.cfg.dev_login;

  $("login").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const user = $<HTMLInputElement>("user").value.trim();
    try {
      await mintToken(user); // fails early on a bad user id
      start(user, () => mintToken(user));
    } catch (err) {
      $("login-error").textContent = "login failed: " + describe(err);
    }
  });
  $("token-login").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const token = $<HTMLInputElement>("token").value.trim();
    localStorage.setItem("courier.token", token);
    start($<HTMLInputElement>("token-user").value.trim(), token);
  });
  $("new-chat").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const input = $<HTMLInputElement>("peer");
    const peer = input.value.trim();
    if (peer) openPeer(peer);
    input.value = "";
  });
  $("send").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const input = $<HTMLInputElement>("text");
    const text = input.value;
    if (!text || !app.current) return;
    input.value = "";
    void send(text);
  });
  $("logout").addEventListener("click", logout);

  const user = localStorage.getItem("courier.user");
  if (user && app.cfg.dev_login) start(user, () => mintToken(user));
  else if (user && localStorage.getItem("courier.token")) start(user, localStorage.getItem("courier.token")!);
  document.body.dataset.ready = "1"; // handlers attached, config loaded
}

void main();
