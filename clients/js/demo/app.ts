// Courier demo client, served by ws-edge at "/". Built on the client
// library (../src) and bundled by `npm run demo` into
// services/ws-edge/internal/webclient/static/app.js.
//
// A small chat: the conversation list (most recent first, unread badges,
// who is online, who is typing), a conversation's history that loads older
// pages as you scroll up, your own messages in every window you have open
// (the server's sender copy), ticks on them (… sending, ✓ stored, ✓✓
// delivered, blue ✓✓ read) from the server's receipts, "… is typing", and
// every reconnect with what was caught up after it.
//
// Against a gateway without conversations (404 on GET /v1/conversations)
// it falls back to what older servers offer: conversations grouped by peer
// from the inbox, and delivered ticks by polling the message's state.

import {
  Courier,
  CourierError,
  HttpError,
  ServerError,
  type CloseInfo,
  type ConnectionState,
  type Message,
  type MessageMeta,
  type Receipt,
} from "../src/index.js";

interface Config {
  gateway_url: string;
  pod: string;
  dev_login: boolean;
}

type Tick = "sending" | "accepted" | "delivered" | "read" | "failed";
const tickRank: Record<Tick, number> = { failed: -1, sending: 0, accepted: 1, delivered: 2, read: 3 };

interface Entry {
  id: string;
  conv: string;
  from: string;
  text: string;
  mine: boolean;
  at: string; // sent_at, RFC 3339
  cursor?: string; // in my inbox
  tick?: Tick;
}

interface Conv {
  id: string;
  /** The other members (me alone for a conversation with myself). */
  members: string[];
  last: number; // ms since the epoch of the newest message (RFC 3339 strings of varying precision do not sort)
  /** Message ids in the server's order: pages as they came, live ones appended. */
  order: string[];
  unread: number;
  /** History: whether older pages exist, and the cursor before which to load them. */
  hasMore: boolean;
  oldest?: string;
  loaded: boolean;
  loading: boolean;
  /**
   * The id signals use: the conversation's id, or for a peer group of an
   * older gateway (no conversation ids) the id the newer ones derive for
   * its members, so typing works with an edge that has signals.
   */
  signalId: string;
}

/** Messages loaded per history page. */
const PAGE = 20;

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

const app = {
  cfg: { gateway_url: "", pod: "", dev_login: false } as Config,
  user: "",
  client: undefined as Courier | undefined,
  /** The gateway has no conversations API: group by peer, poll for delivered. */
  legacy: false,
  /** The edge does not know watch frames / signal frames: send none. */
  noWatch: false,
  noSignals: false,
  /** Which of the two went out last: an unknown_type error answers it. */
  lastSent: "" as "" | "watch" | "signal",
  entries: new Map<string, Entry>(), // by message id
  convs: new Map<string, Conv>(), // by conversation id
  current: "",
  online: new Map<string, boolean>(),
  typing: new Map<string, Set<string>>(), // conversation → users typing
  bySignalId: new Map<string, string>(), // a peer group's derived id → its conversation key
  pendingReceipts: new Map<string, Tick>(), // message id → tick, for receipts that came before the message
  reconnects: 0,
  pendingClose: undefined as CloseInfo | undefined,
  /** Settles once the first conversation list (or the legacy inbox) is loaded: the mode is known. */
  ready: Promise.resolve(),
  /** Whether legacy is decided; live messages wait in `early` until it is (they are keyed by it). */
  modeKnown: false,
  early: [] as Array<[Message, MessageMeta]>,
  /** Settles once the conversation being opened is current (sends wait for it). */
  opening: Promise.resolve(),
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

function describe(err: unknown): string {
  if (err instanceof HttpError) return `${err.code} (${err.status})${err.retryAfterMs ? `, retry in ${Math.ceil(err.retryAfterMs / 1000)} s` : ""}: ${err.message}`;
  if (err instanceof CourierError) return `${err.code}: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}

// ---- the model

function textOf(m: Message): string {
  const p = m.payload as { text?: unknown } | null;
  return p && typeof p === "object" && typeof p.text === "string" ? p.text : JSON.stringify(m.payload);
}

/** The other members of a message's conversation (me, for a message to myself). */
function membersOf(m: Message): string[] {
  const all = new Set([m.from, ...m.to]);
  all.delete(app.user);
  return all.size > 0 ? [...all].sort() : [app.user];
}

/**
 * A message's conversation: its conversation_id; with a gateway that has no
 * conversations API, its peers (ids it may stamp are not what the page can
 * list or page).
 */
function convKey(m: Message): string {
  return !app.legacy && m.conversation_id ? m.conversation_id : "peer:" + membersOf(m).join(",");
}

function conv(id: string, members: string[]): Conv {
  let c = app.convs.get(id);
  if (!c) {
    c = { id, members, last: 0, order: [], unread: 0, hasMore: !app.legacy, loaded: app.legacy, loading: false, signalId: id };
    app.convs.set(id, c);
    if (id.startsWith("peer:")) {
      const peer = c;
      app.client?.conversationWith(members).then(
        (d) => {
          peer.signalId = d;
          app.bySignalId.set(d, peer.id);
        },
        (err: unknown) => log("conversation id: " + describe(err)),
      );
    }
  } else if (c.members.length === 0 && members.length > 0) {
    c.members = members;
  }
  return c;
}

function titleOf(c: Conv): string {
  return c.members.map((u) => (u === app.user ? u + " (you)" : u)).join(", ") || c.id;
}

/**
 * Adds a message (live, replayed, or from a page); returns its entry. A new
 * one is appended to its conversation's order unless `place` is false (a
 * history page places its messages itself).
 */
function addMessage(m: Message, cursor: string | undefined, live: boolean, place = true): Entry {
  const id = convKey(m);
  const c = conv(id, membersOf(m));
  let e = app.entries.get(m.id);
  const mine = m.from === app.user;
  if (!e) {
    e = { id: m.id, conv: id, from: m.from, text: textOf(m), mine, at: m.sent_at };
    app.entries.set(m.id, e);
    if (place) c.order.push(m.id);
    if (live && !mine && id !== app.current) c.unread++;
  }
  if (cursor) e.cursor = cursor;
  // Mine and come back from the server: at least stored.
  if (mine) setTick(e, "accepted");
  const pending = app.pendingReceipts.get(m.id);
  if (pending) {
    app.pendingReceipts.delete(m.id);
    applyReceipt(c.id, m.id, pending);
  }
  touch(c, m.sent_at);
  return e;
}

function touch(c: Conv, at: string): void {
  const t = Date.parse(at);
  if (t > c.last) c.last = t;
}

function setTick(e: Entry, t: Tick): void {
  if (!e.tick || tickRank[t] > tickRank[e.tick]) e.tick = t;
}

/** A conversation's messages in the server's order. */
function sorted(convId: string): Entry[] {
  const out: Entry[] = [];
  for (const id of app.convs.get(convId)?.order ?? []) {
    const e = app.entries.get(id);
    if (e) out.push(e);
  }
  return out;
}

/** A receipt means "up to and including message_id": every one of my messages there, up to it. */
function applyReceipt(convId: string, messageId: string, t: Tick): boolean {
  const list = sorted(convId);
  const at = list.findIndex((e) => e.id === messageId);
  if (at < 0) return false;
  for (const e of list.slice(0, at + 1)) if (e.mine) setTick(e, t);
  return true;
}

function onReceipt(r: Receipt): void {
  const t: Tick = r.kind === "read" ? "read" : "delivered";
  const e = app.entries.get(r.message_id);
  if (!e || !applyReceipt(e.conv, r.message_id, t)) {
    const prev = app.pendingReceipts.get(r.message_id);
    if (!prev || tickRank[t] > tickRank[prev]) app.pendingReceipts.set(r.message_id, t);
  }
  render();
}

// ---- rendering

function render(): void {
  renderList();
  renderConversation();
}

function renderList(): void {
  const list = $("peer-list");
  list.textContent = "";
  const convs = [...app.convs.values()].sort((a, b) => b.last - a.last || (a.id < b.id ? -1 : 1));
  for (const c of convs) {
    const li = document.createElement("li");
    li.dataset.conv = c.id;
    li.dataset.peer = c.members.join(",");
    li.className = c.id === app.current ? "current" : "";
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = titleOf(c);
    const dot = document.createElement("span");
    const others = c.members.filter((u) => u !== app.user);
    const online = others.some((u) => app.online.get(u));
    dot.className = "presence";
    dot.dataset.online = String(online);
    dot.title = online ? "online" : "offline";
    li.append(dot, name);
    const typing = app.typing.get(c.id);
    if (typing && typing.size > 0) {
      const t = document.createElement("span");
      t.className = "typing";
      t.textContent = "typing…";
      li.append(t);
    }
    if (c.unread > 0) {
      const b = document.createElement("span");
      b.className = "unread";
      b.textContent = String(c.unread);
      li.append(b);
    }
    li.addEventListener("click", () => void openConv(c.id, c.members));
    list.append(li);
  }
  const on = [...app.online.entries()].filter(([, v]) => v).map(([u]) => u).sort();
  $("online").textContent = on.length > 0 ? "online: " + on.join(", ") : "nobody else online";
}

function renderConversation(keepScroll?: "bottom" | "anchor"): void {
  const c = app.convs.get(app.current);
  $("conv-title").textContent = c ? "Conversation with " + titleOf(c) : "Start a conversation";
  $("send").hidden = !c;
  const ol = $("messages");
  const wasAtBottom = ol.scrollHeight - ol.scrollTop - ol.clientHeight < 40;
  const fromBottom = ol.scrollHeight - ol.scrollTop;
  ol.textContent = "";
  ol.dataset.conv = app.current;
  ol.dataset.hasMore = String(!!c?.hasMore);
  ol.dataset.loaded = String(!!c?.loaded && !c.loading); // the newest page (or the inbox) is in
  const more = $<HTMLButtonElement>("older");
  more.hidden = !c?.hasMore;
  more.disabled = !!c?.loading;
  more.textContent = c?.loading ? "loading older messages…" : "older messages";
  for (const e of c ? sorted(c.id) : []) {
    const li = document.createElement("li");
    li.dataset.id = e.id;
    li.dataset.mine = String(e.mine);
    if (e.tick) li.dataset.tick = e.tick;
    if (c && c.members.length > 1 && !e.mine) {
      const who = document.createElement("span");
      who.className = "from";
      who.textContent = e.from;
      li.append(who);
    }
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = e.text;
    const meta = document.createElement("span");
    meta.className = "meta";
    meta.textContent = (e.at ? new Date(e.at).toLocaleTimeString() : "") + (e.mine ? " " : "");
    meta.title = e.id;
    if (e.mine) {
      const tick = document.createElement("span");
      tick.className = "tick";
      tick.textContent = tickText(e.tick);
      tick.title = e.tick ?? "";
      meta.append(tick);
    }
    li.append(text, meta);
    ol.append(li);
  }
  const typing = [...(app.typing.get(app.current) ?? [])].sort();
  $("typing").textContent = typing.length === 0 ? "" : typing.join(", ") + (typing.length === 1 ? " is typing…" : " are typing…");
  if (keepScroll === "anchor") ol.scrollTop = ol.scrollHeight - fromBottom;
  else if (keepScroll === "bottom" || wasAtBottom) ol.scrollTop = ol.scrollHeight;
}

function tickText(t: Tick | undefined): string {
  return t === "read" || t === "delivered" ? "✓✓" : t === "accepted" ? "✓" : t === "failed" ? "✗" : "…";
}

// ---- conversations, history, read markers

async function openConv(id: string, members: string[]): Promise<void> {
  const c = conv(id, members);
  app.current = id;
  c.unread = 0;
  renderList();
  renderConversation("bottom");
  $("text").focus();
  if (!c.loaded) await loadPage(c, false);
  markRead(c);
}

/** Loads the newest page (older = false) or the page before the oldest shown. */
async function loadPage(c: Conv, older: boolean): Promise<void> {
  if (app.legacy || c.loading || c.id.startsWith("peer:") || (older && (!c.hasMore || !c.oldest))) return;
  c.loading = true;
  if (c.id === app.current) renderConversation();
  try {
    const p = await app.client!.history(c.id, older ? { before: c.oldest!, limit: PAGE } : { limit: PAGE });
    const ids = p.messages.map((m) => m.id);
    const inPage = new Set(ids);
    if (p.expired) {
      // Behind what the server keeps: start over from the newest page.
      for (const id of c.order) app.entries.delete(id);
      c.order = [];
      log(`history of ${c.id}: the cursor expired; showing the newest page`);
    }
    for (const m of p.messages) addMessage(m, m.cursor, false, false);
    const rest = c.order.filter((id) => !inPage.has(id));
    // Older: the page goes before what is shown. Newest: the page, then
    // what arrived live while it loaded (newer than the page).
    c.order = [...ids, ...rest];
    c.hasMore = p.hasMore;
    if (p.messages.length > 0) c.oldest = p.prevCursor;
    c.loaded = true;
    void refreshTicks(c);
  } catch (err) {
    log("history: " + describe(err));
  } finally {
    c.loading = false;
  }
  if (c.id === app.current) renderConversation(older ? "anchor" : "bottom");
  renderList();
}

/** The ticks of my messages loaded from history: the server's counts of my newest one. */
async function refreshTicks(c: Conv): Promise<void> {
  const mine = sorted(c.id).filter((e) => e.mine);
  const last = mine.at(-1);
  if (!last || last.tick === "read") return;
  try {
    const v = await app.client!.get(last.id);
    const t: Tick | undefined = v.readCount > 0 ? "read" : v.deliveredCount > 0 ? "delivered" : undefined;
    if (t) applyReceipt(c.id, last.id, t);
    render();
  } catch (err) {
    log("state of " + last.id + ": " + describe(err));
  }
}

/** Marks the open conversation read up to its newest message (when it has one from the inbox). */
function markRead(c: Conv): void {
  if (app.legacy || c.id !== app.current || c.id.startsWith("peer:")) return;
  const newest = sorted(c.id).filter((e) => e.cursor).at(-1);
  c.unread = 0;
  renderList();
  if (!newest?.cursor) return;
  app.client!.markRead(c.id, newest.cursor).then(
    (r) => {
      c.unread = c.id === app.current ? 0 : r.unreadCount;
      renderList();
    },
    (err: unknown) => log("mark read: " + describe(err)),
  );
}

/** Another session of mine read up to cursor: what is after it there is still unread. */
function onRead(convId: string, cursor: string): void {
  const c = app.convs.get(convId);
  if (!c) return;
  const list = sorted(convId);
  const at = list.findIndex((e) => e.cursor === cursor);
  c.unread = at < 0 ? 0 : list.slice(at + 1).filter((e) => !e.mine).length;
  renderList();
}

function onMessage(m: Message, meta: MessageMeta): void {
  const e = addMessage(m, meta.cursor, true);
  if (e.conv === app.current && !e.mine) markRead(app.convs.get(e.conv)!);
  watchPeers();
  render();
}

/** The mode is decided: what arrived live meanwhile is shown now. */
function modeDecided(): void {
  if (app.modeKnown) return;
  app.modeKnown = true;
  for (const [m, meta] of app.early.splice(0)) onMessage(m, meta);
}

async function loadConversations(): Promise<void> {
  const client = app.client!;
  try {
    const page = await client.conversations({ limit: 50 });
    modeDecided();
    for (const s of page.conversations) {
      const members = s.last_message ? membersOf(s.last_message) : [];
      const c = conv(s.id, members);
      c.unread = s.id === app.current ? 0 : s.unread_count;
      if (s.last_message) addMessage(s.last_message, s.last_message.cursor, false);
      touch(c, s.updated_at);
    }
    watchPeers();
    render();
    if (app.current) {
      const c = app.convs.get(app.current);
      if (c) await loadPage(c, false);
    }
  } catch (err) {
    if (err instanceof HttpError && err.status === 404) {
      app.legacy = true;
      for (const c of app.convs.values()) {
        c.hasMore = false;
        c.loaded = true;
      }
      log("the gateway has no conversations: grouping the inbox by peer");
      await loadInbox(client);
      modeDecided();
      return;
    }
    log("conversations: " + describe(err));
    modeDecided(); // assume a current gateway rather than hold messages back
  }
}

/** Older gateways: the inbox so far (up to 1,000 messages), grouped by peer. */
async function loadInbox(client: Courier): Promise<void> {
  let cursor: string | undefined;
  try {
    for (let page = 0; page < 5; page++) {
      const p = await client.sync({ cursor, limit: 200 });
      for (const m of p.messages) addMessage(m, m.cursor, false);
      if (p.messages.length === 0) break;
      cursor = p.nextCursor;
    }
    if (!app.current) app.current = [...app.convs.values()].sort((a, b) => b.last - a.last)[0]?.id ?? "";
    render();
  } catch (err) {
    log("history: " + describe(err));
  }
}

// ---- presence and typing

function watchPeers(): void {
  if (app.noWatch || !app.client) return;
  const peers = new Set<string>();
  for (const c of app.convs.values()) for (const u of c.members) if (u !== app.user) peers.add(u);
  const list = [...peers].sort().slice(0, 100);
  if (list.join(",") === app.client.presence.watching.join(",")) return;
  app.lastSent = "watch";
  app.client.presence.watch(list);
  if (list.length > 0) {
    app.client.presence.get(list).then(
      (ps) => {
        for (const p of ps) if (!app.online.has(p.user) || p.online) app.online.set(p.user, p.online);
        renderList();
      },
      (err: unknown) => log("presence: " + describe(err)),
    );
  }
}

function onTyping(convId: string, user: string, active: boolean): void {
  let set = app.typing.get(convId);
  if (!set) app.typing.set(convId, (set = new Set()));
  if (active) set.add(user);
  else set.delete(user);
  render();
}

// ---- sending

async function send(text: string): Promise<void> {
  const client = app.client!;
  const c = app.convs.get(app.current);
  if (!c) return;
  const out = $("send-result");
  out.className = "";
  out.textContent = "sending…";
  if (!app.noSignals && !c.signalId.startsWith("peer:")) {
    app.lastSent = "signal";
    client.typing(c.signalId, false);
  }
  const opts = c.id.startsWith("d.") || c.id.startsWith("peer:") ? {} : { conversationId: c.id };
  try {
    const res = await client.send(c.members, { text }, opts);
    out.textContent = res.attempts > 1 ? `accepted after ${res.attempts} attempts (one key: stored once)` : "";
    let e = app.entries.get(res.id);
    if (!e) {
      e = { id: res.id, conv: c.id, from: app.user, text, mine: true, at: res.acceptedAt };
      app.entries.set(res.id, e);
      c.order.push(res.id);
    }
    setTick(e, "accepted");
    const pending = app.pendingReceipts.get(res.id);
    if (pending) {
      app.pendingReceipts.delete(res.id);
      applyReceipt(c.id, res.id, pending);
    }
    touch(c, res.acceptedAt);
    render();
    renderConversation("bottom");
    if (app.legacy) void watchDelivery(res.id);
  } catch (err) {
    out.className = "error";
    out.textContent = "send failed: " + describe(err);
  }
}

/** Older gateways send no receipts: poll the message's state until a recipient acked it (or a minute passed). */
async function watchDelivery(id: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (let wait = 250; Date.now() < deadline; wait = Math.min(wait * 2, 4000)) {
    await new Promise((r) => setTimeout(r, wait));
    try {
      const v = await app.client!.get(id);
      if (v.state === "delivered") {
        const e = app.entries.get(id);
        if (e) setTick(e, "delivered");
        render();
        return;
      }
    } catch (err) {
      // 404 until the worker stored it: keep waiting.
      if (!(err instanceof HttpError && err.status === 404)) log("state of " + id + ": " + describe(err));
    }
  }
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
  (window as unknown as { courierDemo: unknown }).courierDemo = { client, app };

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
    $("cursor").textContent = meta.cursor;
    if (app.modeKnown) onMessage(m, meta);
    else app.early.push([m, meta]);
  });
  client.on("receipt", onReceipt);
  client.on("read", (r) => onRead(r.conversation, r.cursor));
  client.on("presence", (p) => {
    app.online.set(p.user, p.online);
    renderList();
  });
  client.on("typing", (t) => onTyping(app.bySignalId.get(t.conversation) ?? t.conversation, t.user, t.active));
  client.on("reset", () => {
    banner("warn", "Some messages expired while you were away: showing the newest.");
    for (const c of app.convs.values()) {
      c.loaded = false;
      c.oldest = undefined;
      c.order = [];
    }
    app.entries.clear();
    app.ready = loadConversations();
  });
  client.on("error", (e) => {
    log("error " + e.code + ": " + e.message);
    // An edge without watch or signal frames answers them so (and closes
    // the session after a few): stop sending the kind that went out last.
    if (e instanceof ServerError && e.code === "unknown_type") {
      if (app.lastSent === "watch" && !app.noWatch) {
        app.noWatch = true;
        log("the edge has no presence: not watching");
      } else if (app.lastSent === "signal" && !app.noSignals) {
        app.noSignals = true;
        log("the edge has no signals: not sending typing");
      }
    }
  });
  showState("connecting");
  client.connect();
  app.ready = loadConversations();
  render();
}

function logout(): void {
  app.client?.disconnect();
  app.client = undefined;
  localStorage.removeItem("courier.user");
  localStorage.removeItem("courier.token");
  app.entries.clear();
  app.convs.clear();
  app.online.clear();
  app.typing.clear();
  app.bySignalId.clear();
  app.early = [];
  app.modeKnown = false;
  app.legacy = false;
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
  $("new-chat").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const input = $<HTMLInputElement>("peer");
    // One user, or several separated by commas: a group.
    const members = [...new Set(input.value.split(",").map((u) => u.trim()).filter((u) => u !== ""))].sort();
    input.value = "";
    if (members.length === 0 || !app.client) return;
    const client = app.client;
    app.opening = (async () => {
      await app.ready; // legacy or not decides the id
      const others = members.filter((u) => u !== app.user);
      const shown = others.length > 0 ? others : [app.user];
      const id = app.legacy ? "peer:" + shown.join(",") : await client.conversationWith(shown);
      void openConv(id, shown);
      watchPeers();
    })();
  });
  $("send").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const input = $<HTMLInputElement>("text");
    const text = input.value;
    if (!text) return;
    input.value = "";
    // A conversation opened just before may still be computing its id.
    void app.opening.then(() => (app.current ? send(text) : undefined));
  });
  $("text").addEventListener("input", () => {
    const c = app.current;
    const id = app.convs.get(c)?.signalId;
    if (!id || app.noSignals || id.startsWith("peer:") || !app.client) return;
    app.lastSent = "signal";
    if ($<HTMLInputElement>("text").value === "") app.client.typing(id, false);
    else app.client.typing(id);
  });
  $("messages").addEventListener("scroll", () => {
    const c = app.convs.get(app.current);
    if (c && $("messages").scrollTop < 40) void loadPage(c, true);
  });
  $("older").addEventListener("click", () => {
    const c = app.convs.get(app.current);
    if (c) void loadPage(c, true);
  });
  $("logout").addEventListener("click", logout);

  const user = localStorage.getItem("courier.user");
  if (user && app.cfg.dev_login) start(user, () => mintToken(user));
  else if (user && localStorage.getItem("courier.token")) start(user, localStorage.getItem("courier.token")!);
  document.body.dataset.ready = "1"; // handlers attached, config loaded
}

void main();
