// Conversations, history, read markers, receipts, presence, signals and
// typing: the calls and events of issues 21 and 22, on the fakes.
import { test } from "node:test";
import assert from "node:assert/strict";

import { Courier, CourierError, HttpError, conversationId, TYPING_THROTTLE_MS, TYPING_EXPIRE_MS } from "../dist/index.js";
import { FakeClock, fakeFetch, fakeSockets, flush, json, jwt, msg } from "./fakes.mjs";

const EXP_FAR = Date.UTC(2030, 0, 1) / 1000;
const problem = (status, code) => json(status, { status, code, detail: code });

/** A client with both a fake socket and a fake fetch, every event recorded. */
function setup(answers = [], opts = {}) {
  const clock = new FakeClock();
  const net = fakeSockets();
  const fetch = fakeFetch(...answers);
  const c = new Courier({
    edgeUrl: "https://edge.example",
    gatewayUrl: "https://gw.example",
    token: jwt({ sub: "bob", exp: EXP_FAR }),
    WebSocket: net.WebSocket,
    fetch,
    clock,
    pingIntervalMs: 0,
    ...opts,
  });
  const ev = { receipt: [], read: [], presence: [], signal: [], typing: [], reset: [], errors: [], messages: [], synced: [] };
  for (const k of ["receipt", "read", "presence", "signal", "typing", "reset"]) c.on(k, (x) => ev[k].push(x));
  c.on("error", (e) => ev.errors.push(e));
  c.on("message", (m, meta) => ev.messages.push({ id: m.id, ...meta }));
  c.on("synced", (s) => ev.synced.push(s));
  return { c, clock, net, fetch, ev };
}

async function live(s) {
  s.c.connect();
  await flush();
  const ws = s.net.last();
  ws.hello();
  ws.frames({ type: "synced", cursor: "c0" });
  return ws;
}

test("conversationId: the gateway's derivation (test vector alice+bob), whatever the order and repeats", async () => {
  // pkg/conversation's test vector: sha256("alice\nbob")[:16 bytes], hex.
  assert.equal(await conversationId(["alice", "bob"]), "d.1cb15457d1ddab60e205c0fe3ca2f65d");
  assert.equal(await conversationId(["bob", "alice", "bob"]), "d.1cb15457d1ddab60e205c0fe3ca2f65d");
  assert.notEqual(await conversationId(["alice", "bob", "carol"]), await conversationId(["alice", "bob"]));
  // Byte order, as Go sorts: "Z" (0x5a) before "a" (0x61), "é" (UTF-8 0xc3…) after "z".
  const manual = async (joined) => {
    const d = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(joined)));
    return "d." + Buffer.from(d).toString("hex").slice(0, 32);
  };
  assert.equal(await conversationId(["é", "z", "Z"]), await manual("Z\nz\né"));
  await assert.rejects(conversationId([]), { code: "invalid_argument" });
  await assert.rejects(conversationId(["a", ""]), { code: "invalid_argument" });

  const s = setup();
  assert.equal(await s.c.conversationWith("alice"), "d.1cb15457d1ddab60e205c0fe3ca2f65d", "bob's token: bob + alice");
  // A token function not called yet is asked who the caller is.
  const lazy = setup([], { token: async () => jwt({ sub: "alice", exp: EXP_FAR }) });
  assert.equal(await lazy.c.conversationWith(["bob"]), "d.1cb15457d1ddab60e205c0fe3ca2f65d");
  const anonymous = setup([], { token: "opaque" });
  await assert.rejects(anonymous.c.conversationWith("bob"), { code: "not_configured" });
});

test("conversations(): GET /v1/conversations with limit and cursor, most recent first, unread counts", async () => {
  const s = setup([
    json(200, {
      conversations: [
        { id: "d.x", last_message: { id: "m2", from: "alice", to: ["bob"], payload: { text: "hi" }, sent_at: "t", conversation_id: "d.x", cursor: "c2" }, last_cursor: "c2", unread_count: 2, read_cursor: "", updated_at: "2026-01-01T00:00:01Z" },
        { id: "team", last_message: null, last_cursor: "", unread_count: 0, read_cursor: "c1", updated_at: "2026-01-01T00:00:00Z" },
      ],
      next_cursor: "k2",
    }),
  ]);
  const page = await s.clock.drive(s.c.conversations({ limit: 2, cursor: "k1" }));
  const u = new URL(s.fetch.calls[0].url);
  assert.equal(u.pathname, "/v1/conversations");
  assert.equal(u.searchParams.get("limit"), "2");
  assert.equal(u.searchParams.get("cursor"), "k1");
  assert.equal(page.nextCursor, "k2");
  assert.deepEqual(page.conversations.map((c) => [c.id, c.unread_count, c.last_message?.cursor ?? null]), [
    ["d.x", 2, "c2"],
    ["team", 0, null],
  ]);
  assert.equal(page.conversations[0].last_message.conversation_id, "d.x");
});

test("history(): the newest page, before (scrolling back) and after; both at once is refused", async () => {
  const page = (ids, more) =>
    json(200, {
      messages: ids.map((id, i) => ({ id, from: "alice", to: ["bob"], payload: i, sent_at: "t", conversation_id: "d.x", cursor: "c-" + id })),
      has_more: more,
      prev_cursor: "c-" + ids[0],
      next_cursor: "c-" + ids.at(-1),
    });
  const s = setup([page(["m3", "m4"], true), page(["m1", "m2"], false), page(["m5"], false)]);
  const newest = await s.clock.drive(s.c.history("d.x", { limit: 2 }));
  assert.deepEqual(newest.messages.map((m) => m.id), ["m3", "m4"]);
  assert.equal(newest.hasMore, true);
  assert.equal(newest.prevCursor, "c-m3");
  const older = await s.clock.drive(s.c.history("d.x", { before: newest.prevCursor, limit: 2 }));
  assert.deepEqual(older.messages.map((m) => [m.id, m.cursor]), [
    ["m1", "c-m1"],
    ["m2", "c-m2"],
  ]);
  assert.equal(older.hasMore, false);
  const newer = await s.clock.drive(s.c.history("d.x", { after: newest.nextCursor }));
  assert.deepEqual(newer.messages.map((m) => m.id), ["m5"]);
  const urls = s.fetch.calls.map((x) => new URL(x.url));
  assert.equal(urls[0].pathname, "/v1/conversations/d.x/messages");
  assert.equal(urls[0].search, "?limit=2");
  assert.equal(urls[1].searchParams.get("before"), "c-m3");
  assert.equal(urls[2].searchParams.get("after"), "c-m4");
  await assert.rejects(s.c.history("d.x", { before: "a", after: "b" }), { code: "invalid_argument" });
  await assert.rejects(s.c.history("bad id!"), { code: "invalid_argument" });
});

test("history(): a cursor behind what the server keeps (410 cursor_expired) gives the newest page, marked expired, not a gap", async () => {
  const s = setup([
    problem(410, "cursor_expired"),
    json(200, { messages: [{ id: "m9", from: "alice", to: ["bob"], payload: 1, sent_at: "t", cursor: "c9" }], has_more: true, prev_cursor: "c9", next_cursor: "c9" }),
  ]);
  const p = await s.clock.drive(s.c.history("d.x", { after: "c-old", limit: 20 }));
  assert.equal(p.expired, true);
  assert.deepEqual(p.messages.map((m) => m.id), ["m9"]);
  const second = new URL(s.fetch.calls[1].url);
  assert.equal(second.searchParams.get("after"), null, "the reload asks for the newest page");
  assert.equal(second.searchParams.get("limit"), "20");

  // Without a cursor there is nothing to fall back to: the error is typed.
  const t = setup([problem(410, "cursor_expired")]);
  await assert.rejects(t.clock.drive(t.c.history("d.x")), (err) => err instanceof HttpError && err.status === 410 && err.code === "cursor_expired");
});

test("markRead(): POST /v1/conversations/{id}/read with the cursor; the answer's marker and unread count", async () => {
  const s = setup([json(200, { conversation_id: "d.x", read_cursor: "c7", unread_count: 0 })]);
  const r = await s.clock.drive(s.c.markRead("d.x", "c7"));
  assert.deepEqual(r, { conversationId: "d.x", readCursor: "c7", unreadCount: 0 });
  assert.equal(s.fetch.calls[0].method, "POST");
  assert.equal(new URL(s.fetch.calls[0].url).pathname, "/v1/conversations/d.x/read");
  assert.deepEqual(JSON.parse(s.fetch.calls[0].body), { cursor: "c7" });
  await assert.rejects(s.c.markRead("d.x", ""), { code: "invalid_argument" });
});

test("get(): delivered and read counts; send(): conversation_id, and derived ids are the server's to give", async () => {
  const s = setup([
    json(200, { message: { id: "m1", from: "bob", to: ["alice"], payload: 1, sent_at: "t" }, state: "delivered", delivered_to: ["alice"], delivered_count: 1, read_count: 1 }),
    json(200, { message: { id: "m2", from: "bob", to: ["alice"], payload: 1, sent_at: "t" }, state: "stored", delivered_to: [] }),
    json(202, { id: "m3", accepted_at: "t" }),
  ]);
  const v = await s.clock.drive(s.c.get("m1"));
  assert.equal(v.deliveredCount, 1);
  assert.equal(v.readCount, 1);
  assert.equal(v.read_count, 1, "the REST API's name too");
  assert.equal(v.delivered_count, v.deliveredCount);
  const old = await s.clock.drive(s.c.get("m2"));
  assert.equal(old.readCount, 0, "a server without read state: 0");
  await s.clock.drive(s.c.send(["alice", "carol"], { text: "x" }, { conversationId: "team-1" }));
  assert.deepEqual(JSON.parse(s.fetch.calls[2].body), { to: ["alice", "carol"], payload: { text: "x" }, conversation_id: "team-1" });
  await assert.rejects(s.c.send("alice", 1, { conversationId: "d.abc" }), { code: "invalid_argument" });
});

test("receipt, read, presence and signal frames become events; the sender's own copy is shown but not acked", async () => {
  const s = setup();
  const ws = await live(s);
  ws.frames(
    { type: "receipt", kind: "delivered", conversation: "d.x", message_id: "m1", user: "alice" },
    { type: "receipt", kind: "read", conversation: "big", message_id: "m2", count: 40 },
    { type: "read", conversation: "d.x", cursor: "c5" },
    { type: "presence", user: "alice", online: true, last_seen: "2026-01-01T00:00:00Z" },
    { type: "presence", user: "carol", online: false, last_seen: null },
    { type: "signal", from: "alice", kind: "wave", data: { n: 1 }, sent_at: "t" },
    msg("own", 6, { from: "bob", to: ["alice"], outgoing: true, conversation_id: "d.x" }),
    msg("theirs", 7, { conversation_id: "d.x" }),
  );
  assert.deepEqual(s.ev.receipt, [
    { kind: "delivered", conversation: "d.x", message_id: "m1", user: "alice" },
    { kind: "read", conversation: "big", message_id: "m2", count: 40 },
  ]);
  assert.deepEqual(s.ev.read, [{ conversation: "d.x", cursor: "c5" }]);
  assert.deepEqual(s.ev.presence, [
    { user: "alice", online: true, last_seen: "2026-01-01T00:00:00Z" },
    { user: "carol", online: false, last_seen: null },
  ]);
  assert.deepEqual(s.ev.signal, [{ from: "alice", kind: "wave", data: { n: 1 }, sent_at: "t" }]);
  assert.deepEqual(s.ev.messages.map((m) => m.id), ["own", "theirs"]);
  assert.deepEqual(ws.acks(), ["theirs"], "the own copy is not a delivery");
  // A receipt of an unknown kind is reported, not passed on.
  ws.frames({ type: "receipt", kind: "seen", conversation: "d.x", message_id: "m1" });
  assert.equal(s.ev.receipt.length, 2);
  assert.equal(s.ev.errors.at(-1).code, "bad_frame");
});

test("presence.watch sends the watch set, replaces it, and sends it again on every new session", async () => {
  const s = setup();
  s.c.presence.watch(["alice", "carol", "alice"]); // before any session: kept for the hello
  const ws = await live(s);
  const watches = (w) => w.sent.filter((f) => f.type === "watch").map((f) => f.users);
  assert.deepEqual(watches(ws), [["alice", "carol"]]);
  s.c.presence.watch(["dave"]);
  assert.deepEqual(watches(ws), [["alice", "carol"], ["dave"]]);
  assert.deepEqual(s.c.presence.watching, ["dave"]);
  ws.serverClose(1001, "going away");
  await s.clock.advance(0);
  const ws2 = s.net.last();
  assert.notEqual(ws2, ws);
  ws2.hello();
  assert.deepEqual(watches(ws2), [["dave"]]);
  assert.throws(() => s.c.presence.watch(Array.from({ length: 101 }, (_, i) => "u" + i)), { code: "invalid_argument" });
});

test("presence.get(): GET /v1/presence?users=", async () => {
  const s = setup([json(200, { presence: [{ user: "alice", online: true, last_seen: "t" }, { user: "zed", online: false, last_seen: null }] })]);
  const p = await s.clock.drive(s.c.presence.get(["alice", "zed"]));
  assert.equal(new URL(s.fetch.calls[0].url).search, "?users=alice,zed");
  assert.deepEqual(p, [
    { user: "alice", online: true, last_seen: "t" },
    { user: "zed", online: false, last_seen: null },
  ]);
});

test("signal(): over the session when open, else POST /v1/signals (never retried); checked before sending", async () => {
  const s = setup([json(202, {}), problem(503, "unavailable")]);
  // No session: the gateway takes it.
  await s.clock.drive(s.c.signal({ conversation: "d.x", kind: "wave", data: { a: 1 } }));
  assert.equal(new URL(s.fetch.calls[0].url).pathname, "/v1/signals");
  assert.deepEqual(JSON.parse(s.fetch.calls[0].body), { kind: "wave", conversation_id: "d.x", data: { a: 1 } });
  await assert.rejects(s.clock.drive(s.c.signal({ to: ["alice"], kind: "wave" })), (e) => e instanceof HttpError && e.status === 503);
  assert.equal(s.fetch.calls.length, 2, "a signal is at most once: no retry");

  const ws = await live(s);
  await s.c.signal({ to: ["alice"], kind: "wave" });
  assert.deepEqual(ws.sent.at(-1), { type: "signal", to: ["alice"], kind: "wave" });
  assert.equal(s.fetch.calls.length, 2, "the session carried it");

  await assert.rejects(s.c.signal({ to: ["alice"], kind: "Bad Kind" }), { code: "invalid_argument" });
  await assert.rejects(s.c.signal({ kind: "wave" }), { code: "invalid_argument" });
  await assert.rejects(s.c.signal({ to: ["alice"], kind: "wave", data: "x".repeat(1100) }), (e) => e instanceof CourierError && e.code === "signal_too_large");
});

test("typing(): one signal per 2.5 s while typing, 'stopped' at once, and typing again right after a stop", async () => {
  assert.equal(TYPING_THROTTLE_MS, 2500);
  const s = setup();
  const ws = await live(s);
  const typingSent = () => ws.sent.filter((f) => f.type === "signal" && f.kind === "typing");
  // A keystroke every 100 ms for 6 s: signals at 0, 2.5 s and 5 s only.
  const t0 = s.clock.now();
  const at = [];
  for (let i = 0; i < 60; i++) {
    const before = typingSent().length;
    s.c.typing("d.x");
    if (typingSent().length > before) at.push(s.clock.now() - t0);
    await s.clock.advance(100);
  }
  assert.deepEqual(at, [0, 2500, 5000]);
  assert.deepEqual(typingSent()[0], { type: "signal", conversation: "d.x", kind: "typing", data: { active: true } });
  // Throttled per conversation: another conversation goes at once.
  s.c.typing("team");
  assert.equal(typingSent().at(-1).conversation, "team");
  // Stop: sent at once; the next keystroke is a new "typing" at once.
  s.c.typing("d.x", false);
  assert.deepEqual(typingSent().at(-1), { type: "signal", conversation: "d.x", kind: "typing", data: { active: false } });
  s.c.typing("d.x");
  assert.deepEqual(typingSent().at(-1).data, { active: true });
  // A stop long after the last typing signal (receivers expired it already) sends nothing.
  const n = typingSent().length;
  await s.clock.advance(TYPING_EXPIRE_MS);
  s.c.typing("d.x", false);
  assert.equal(typingSent().length, n);
});

test("typing events: shown on a typing signal, extended by the next, expired 6 s after the last; ended by 'stopped' or a message", async () => {
  assert.equal(TYPING_EXPIRE_MS, 6000);
  const s = setup();
  const ws = await live(s);
  const typing = (from, conversation, active = true) => ws.frames({ type: "signal", from, conversation, kind: "typing", data: { active }, sent_at: "t" });
  typing("alice", "d.x");
  assert.deepEqual(s.ev.typing, [{ conversation: "d.x", user: "alice", active: true }]);
  await s.clock.advance(2500);
  typing("alice", "d.x"); // the throttled repeat: no new event, a new deadline
  assert.equal(s.ev.typing.length, 1);
  await s.clock.advance(5999);
  assert.equal(s.ev.typing.length, 1, "still typing 5.999 s after the last signal");
  await s.clock.advance(1);
  assert.deepEqual(s.ev.typing.at(-1), { conversation: "d.x", user: "alice", active: false });

  // "stopped" ends it at once; so does a message from the typist there.
  typing("carol", "team");
  typing("carol", "team", false);
  assert.deepEqual(s.ev.typing.slice(-2).map((e) => e.active), [true, false]);
  typing("alice", "d.x");
  ws.frames(msg("m1", 1, { from: "alice", conversation_id: "d.x" }));
  assert.deepEqual(s.ev.typing.at(-1), { conversation: "d.x", user: "alice", active: false });
  const n = s.ev.typing.length;
  await s.clock.advance(TYPING_EXPIRE_MS);
  assert.equal(s.ev.typing.length, n, "no second 'stopped' from the old deadline");

  // My own typing (from my other window) is not shown; neither is typing without a conversation.
  typing("bob", "d.x");
  ws.frames({ type: "signal", from: "alice", to: ["bob"], kind: "typing", sent_at: "t" });
  assert.equal(s.ev.typing.length, n);
  assert.equal(s.ev.signal.length, 7, "every signal is still a `signal` event");
});

test("close 4410 (cursor_expired): the cursor is dropped, the next session starts live at once, and `reset` follows its synced", async () => {
  const store = new Map([["courier.cursor.bob", "c-old"]]);
  const s = setup([], { storage: { getItem: (k) => store.get(k) ?? null, setItem: (k, v) => void store.set(k, v) } });
  s.c.connect();
  await flush();
  const ws = s.net.last();
  assert.equal(ws.url.searchParams.get("cursor"), "c-old");
  ws.open();
  ws.serverClose(4410, "cursor_expired: behind the retention");
  assert.equal(s.ev.reset.length, 0);
  await s.clock.advance(0);
  const ws2 = s.net.last();
  assert.notEqual(ws2, ws, "reconnected at once");
  assert.equal(ws2.url.searchParams.get("cursor"), null, "live from the head");
  assert.equal(store.get("courier.cursor.bob"), "", "the stored cursor is dropped too");
  ws2.hello();
  assert.equal(s.ev.reset.length, 0, "not before the session is synced");
  ws2.frames({ type: "synced", cursor: "c-head" });
  assert.deepEqual(s.ev.reset, [{ reason: "cursor_expired" }]);
  assert.equal(s.c.cursor, "c-head");
  ws2.serverClose(1006);
  await s.clock.advance(60_000);
  s.net.last().hello();
  s.net.last().frames({ type: "synced", cursor: "c-head" });
  assert.equal(s.ev.reset.length, 1, "once");
});
