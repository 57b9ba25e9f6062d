import { test } from "node:test";
import assert from "node:assert/strict";

import { Courier, ConnectionError, ServerError, memoryStorage } from "../dist/index.js";
import { FakeClock, fakeSockets, flush, jwt, msg } from "./fakes.mjs";

const EXP_FAR = Date.UTC(2030, 0, 1) / 1000;

/** A client wired to fakes, with every event recorded. */
function setup(opts = {}) {
  const clock = new FakeClock();
  const net = fakeSockets();
  const c = new Courier({
    edgeUrl: "https://edge.example",
    token: jwt({ sub: "bob", exp: EXP_FAR }),
    WebSocket: net.WebSocket,
    clock,
    pingIntervalMs: 0,
    ...opts,
  });
  const rec = { states: [], messages: [], closes: [], errors: [], opens: [], synced: [] };
  c.on("state", (s, ch) => rec.states.push({ s, ...ch }));
  c.on("message", (m, meta) => rec.messages.push({ id: m.id, ...meta }));
  c.on("close", (i) => rec.closes.push(i));
  c.on("error", (e) => rec.errors.push(e));
  c.on("open", (s) => rec.opens.push(s));
  c.on("synced", (s) => rec.synced.push(s));
  return { c, clock, net, rec };
}

test("connects with batch=1 and the token in the first frame, splits batched frames, delivers in order and acks", async () => {
  const { c, net, rec } = setup();
  c.connect();
  await flush();
  assert.equal(rec.states[0].s, "connecting");
  const ws = net.last();
  assert.equal(ws.url.origin + ws.url.pathname, "wss://edge.example/v1/ws");
  assert.equal(ws.url.searchParams.get("batch"), "1");
  assert.equal(ws.url.searchParams.get("cursor"), null, "no cursor yet: live-only start");
  assert.equal(ws.url.searchParams.get("token"), null, "no token in the URL: access logs keep URLs");

  ws.open();
  assert.equal(ws.sent.length, 1);
  assert.equal(ws.sent[0].type, "auth", "the first frame is the auth frame");
  assert.ok(ws.sent[0].token.startsWith("ey"));
  ws.frames(
    { type: "hello", session_id: "s1", pod: "edge-a", user: "bob", resumed: false },
    { type: "synced", cursor: "c0" },
    msg("m1", 1),
    msg("m2", 2),
  );
  assert.equal(c.state, "open");
  assert.deepEqual(c.session, { sessionId: "s1", pod: "edge-a", user: "bob", resumed: false });
  assert.deepEqual(rec.messages.map((m) => m.id), ["m1", "m2"]);
  assert.deepEqual(rec.messages.map((m) => m.cursor), ["c1", "c2"]);
  assert.equal(c.cursor, "c2");
  assert.deepEqual(ws.acks(), ["m1", "m2"]);
  assert.deepEqual(rec.synced, [{ cursor: "c0", replayed: 0 }]);
});

test("a server without batching (one frame per message) works the same", async () => {
  const { c, net, rec } = setup();
  c.connect();
  await flush();
  const ws = net.last();
  ws.hello();
  ws.frames({ type: "synced", cursor: "c0" });
  ws.frames(msg("m1", 1));
  ws.frames(msg("m2", 2));
  assert.deepEqual(rec.messages.map((m) => m.id), ["m1", "m2"]);
});

test("to_count is filled from `to` for servers that do not send it, and kept when they do", async () => {
  const { c, net } = setup();
  const got = [];
  c.on("message", (m) => got.push([m.to.length, m.to_count]));
  c.connect();
  await flush();
  const ws = net.last();
  ws.hello();
  ws.frames(msg("small", 1, { to: ["bob", "carol"] }), msg("large", 2, { to: [], to_count: 500 }));
  assert.deepEqual(got, [
    [2, 2],
    [0, 500],
  ]);
});

test("reconnect schedule: capped exponential backoff with jitter; a stable session resets it", async () => {
  for (const [rand, want] of [
    [1, [500, 1000, 2000, 4000, 8000, 15000, 15000]], // ceilings
    [0, [250, 500, 1000, 2000, 4000, 7500, 7500]], // half the ceilings: the jitter's floor
  ]) {
    const { c, clock, net, rec } = setup();
    clock.rand = rand;
    c.connect();
    await flush();
    for (let i = 0; i < want.length; i++) {
      net.last().refuse();
      const delay = rec.states.at(-1).delayMs;
      assert.equal(rec.states.at(-1).s, "reconnecting");
      assert.equal(delay, want[i], `attempt ${i} with random ${rand}`);
      const before = net.sockets.length;
      await clock.advance(delay - 1);
      assert.equal(net.sockets.length, before, "no attempt before the delay");
      await clock.advance(1);
      assert.equal(net.sockets.length, before + 1, "an attempt at the delay");
    }
    // A session that lasts 10 s resets the schedule.
    net.last().hello();
    await clock.advance(10_000);
    net.last().serverClose(1006);
    assert.equal(rec.states.at(-1).delayMs, want[0]);
    assert.equal(rec.closes.at(-1).meaning, "connection lost");
    c.disconnect();
  }
});

test("1001 (pod draining) reconnects at once, resuming from the cursor", async () => {
  const { c, clock, net, rec } = setup();
  c.connect();
  await flush();
  const ws = net.last();
  ws.hello();
  ws.frames({ type: "synced", cursor: "c0" }, msg("m1", 1));
  ws.serverClose(1001, "going away");
  assert.equal(rec.states.at(-1).s, "reconnecting");
  assert.equal(rec.states.at(-1).delayMs, 0);
  assert.equal(rec.closes.at(-1).action, "reconnect_now");
  await clock.advance(0);
  const ws2 = net.last();
  assert.notEqual(ws2, ws);
  assert.equal(ws2.url.searchParams.get("cursor"), "c1");
  assert.equal(ws2.url.searchParams.get("batch"), "1");
});

test("messages are delivered once across reconnects, and the replay is told apart", async () => {
  const { c, clock, net, rec } = setup();
  c.connect();
  await flush();
  let ws = net.last();
  ws.hello();
  ws.frames({ type: "synced", cursor: "c0" }, msg("m1", 1), msg("m2", 2));
  ws.serverClose(1006);
  await clock.advance(rec.states.at(-1).delayMs);
  ws = net.last();
  assert.equal(ws.url.searchParams.get("cursor"), "c2");
  ws.hello();
  // A server (or a stale stored cursor) repeating m2 must not show it twice.
  ws.frames(msg("m2", 2), msg("m3", 3), { type: "synced", cursor: "c3" }, msg("m4", 4));
  assert.deepEqual(rec.messages.map((m) => m.id), ["m1", "m2", "m3", "m4"]);
  assert.deepEqual(rec.messages.map((m) => m.replayed), [false, false, true, false]);
  assert.deepEqual(rec.synced.at(-1), { cursor: "c3", replayed: 1 });
  assert.deepEqual(ws.acks(), ["m3", "m4"], "duplicates are not acked again");
  assert.equal(c.cursor, "c4");
});

test("the cursor is persisted under the user's key and a new client resumes from it", async () => {
  const storage = memoryStorage();
  const a = setup({ storage });
  a.c.connect();
  await flush();
  a.net.last().hello();
  a.net.last().frames({ type: "synced", cursor: "c0" }, msg("m1", 1), msg("m2", 2));
  assert.equal(storage.getItem("courier.cursor.bob"), "c2");
  a.c.disconnect();
  assert.deepEqual(a.net.last().closedByClient, { code: 1000, reason: "client closed" });

  const b = setup({ storage });
  b.c.connect();
  await flush();
  assert.equal(b.net.last().url.searchParams.get("cursor"), "c2");

  // An explicit cursor wins over the stored one.
  const d = setup({ storage });
  d.c.connect({ cursor: "c1" });
  await flush();
  assert.equal(d.net.last().url.searchParams.get("cursor"), "c1");
});

test("an asynchronous storage works, and a failing one is reported without stopping the client", async () => {
  const saved = [];
  const asyncStore = { getItem: async () => "c7", setItem: async (k, v) => void saved.push([k, v]) };
  const a = setup({ storage: asyncStore, storageKey: "k" });
  a.c.connect();
  await flush();
  assert.equal(a.net.last().url.searchParams.get("cursor"), "c7");
  a.net.last().hello();
  a.net.last().frames(msg("m8", 8));
  await flush();
  assert.deepEqual(saved, [["k", "c8"]]);

  const broken = {
    getItem: async () => {
      throw new Error("disk gone");
    },
    setItem: () => {
      throw new Error("quota");
    },
  };
  const b = setup({ storage: broken });
  b.c.connect();
  await flush();
  assert.equal(b.net.sockets.length, 1, "connects without the stored cursor");
  b.net.last().hello();
  b.net.last().frames(msg("m1", 1));
  assert.deepEqual(b.rec.messages.map((m) => m.id), ["m1"]);
  assert.deepEqual(b.rec.errors.map((e) => e.code), ["storage_error", "storage_error"]);
});

test("1008 token expired: the token function is called again and the session resumes at once", async () => {
  let n = 0;
  const token = async () => jwt({ sub: "bob", exp: EXP_FAR, n: ++n });
  const { c, clock, net, rec } = setup({ token });
  c.connect();
  await flush();
  assert.equal(n, 1);
  net.last().hello();
  net.last().frames(msg("m1", 1));
  net.last().serverClose(1008, "token expired");
  assert.equal(rec.closes.at(-1).action, "refresh_token");
  assert.equal(rec.states.at(-1).delayMs, 0);
  await clock.advance(0);
  assert.equal(n, 2, "a new token was fetched");
  const ws = net.last();
  assert.equal(ws.url.searchParams.get("cursor"), "c1");
  ws.open();
  assert.match(ws.token(), /^ey/);
  assert.notEqual(ws.token(), net.sockets[0].token());
});

test("a fixed token that expired is reported, not retried", async () => {
  const { c, net, rec } = setup();
  c.connect();
  await flush();
  net.last().hello();
  net.last().serverClose(1008, "token expired");
  assert.equal(c.state, "closed");
  assert.ok(rec.errors.at(-1) instanceof ConnectionError);
  assert.equal(rec.errors.at(-1).code, "token_expired");

  const expired = setup({ token: jwt({ sub: "bob", exp: Date.UTC(2025, 0, 1) / 1000 }) });
  expired.c.connect();
  await flush();
  assert.equal(expired.net.sockets.length, 0, "no connect with a token known to be expired");
  assert.equal(expired.c.state, "closed");
  assert.equal(expired.rec.errors.at(-1).code, "token_expired");
});

test("a token close to its expiry is replaced before connecting", async () => {
  const clock = new FakeClock();
  const issued = [];
  const token = () => {
    // Each token lives 60 s from now.
    const t = jwt({ sub: "bob", exp: Math.floor(clock.now() / 1000) + 60 });
    issued.push(t);
    return t;
  };
  const net = fakeSockets();
  const c = new Courier({ edgeUrl: "http://edge", token, WebSocket: net.WebSocket, clock, pingIntervalMs: 0 });
  c.connect();
  await flush();
  assert.equal(issued.length, 1);
  assert.equal(net.last().url.protocol, "ws:");
  net.last().hello();
  await clock.advance(45_000); // 15 s left: inside the 30 s margin
  net.last().serverClose(1006);
  await clock.advance(1000);
  assert.equal(issued.length, 2);
  net.last().open();
  assert.equal(net.last().token(), issued[1]);
});

test("connects refused before the hello: a new token after 3 in a row (browsers cannot tell a 401)", async () => {
  let n = 0;
  const { c, clock, net } = setup({ token: () => jwt({ sub: "bob", exp: EXP_FAR, n: ++n }) });
  c.connect();
  await flush();
  for (let i = 0; i < 3; i++) {
    net.last().refuse();
    await clock.advance(20_000);
  }
  assert.equal(n, 2, "refreshed once, after the third failure");
  net.last().hello();
  net.last().serverClose(1006);
  await clock.advance(20_000);
  net.last().refuse();
  await clock.advance(20_000);
  assert.equal(n, 2, "the count starts again after a session opened");
});

test("a 401 that the WebSocket implementation reveals (Node's ws) refreshes the token at the next attempt", async () => {
  let n = 0;
  const { c, clock, net, rec } = setup({ token: () => jwt({ sub: "bob", exp: EXP_FAR, n: ++n }) });
  c.connect();
  await flush();
  net.last().refuse("Unexpected server response: 401");
  assert.equal(rec.closes.at(-1).httpStatus, 401);
  assert.equal(rec.closes.at(-1).action, "refresh_token");
  assert.ok(rec.states.at(-1).delayMs > 0, "a refused token is retried after the backoff");
  await clock.advance(rec.states.at(-1).delayMs);
  assert.equal(n, 2);
  net.last().refuse("Unexpected server response: 503");
  assert.equal(rec.closes.at(-1).meaning, "the pod is full or draining (503)");
  assert.equal(rec.closes.at(-1).action, "reconnect");
});

test("close codes that must not be retried blindly stop the client with a typed error", async () => {
  for (const [code, reason, errCode] of [
    [1008, "too many bad frames", "policy_violation"],
    [1008, "something new", "policy_violation"],
    [1009, "frame too large", "frame_too_large"],
  ]) {
    const { c, clock, net, rec } = setup();
    c.connect();
    await flush();
    net.last().hello();
    net.last().serverClose(code, reason);
    await clock.advance(60_000);
    assert.equal(net.sockets.length, 1, `${code} ${reason}: no reconnect`);
    assert.equal(c.state, "closed");
    const err = rec.errors.at(-1);
    assert.ok(err instanceof ConnectionError);
    assert.equal(err.code, errCode);
    assert.equal(err.closeCode, code);
    assert.equal(rec.states.at(-1).error, err);
  }
});

test("1008 send queue overflow and 1011 resume failed reconnect with the cursor after the backoff", async () => {
  for (const [code, reason] of [
    [1008, "send queue overflow"],
    [1011, "resume failed"],
  ]) {
    const { c, clock, net, rec } = setup();
    c.connect();
    await flush();
    net.last().hello();
    net.last().frames(msg("m1", 1));
    net.last().serverClose(code, reason);
    assert.equal(rec.closes.at(-1).action, "reconnect");
    const delay = rec.states.at(-1).delayMs;
    assert.ok(delay > 0);
    await clock.advance(delay);
    assert.equal(net.sockets.length, 2);
    assert.equal(net.last().url.searchParams.get("cursor"), "c1");
  }
});

test("acks asked for while disconnected are sent when the next session opens", async () => {
  const { c, clock, net, rec } = setup({ autoAck: false });
  c.connect();
  await flush();
  net.last().hello();
  net.last().frames(msg("m1", 1));
  assert.deepEqual(net.last().acks(), [], "autoAck off");
  net.last().serverClose(1006);
  c.ack("m1");
  await clock.advance(rec.states.at(-1).delayMs);
  net.last().hello();
  assert.deepEqual(net.last().acks(), ["m1"]);
});

test("an unanswered ping ends the session as lost and the client reconnects", async () => {
  const { c, clock, net, rec } = setup({ pingIntervalMs: 25_000, pongTimeoutMs: 10_000 });
  c.connect();
  await flush();
  const ws = net.last();
  ws.hello();
  await clock.advance(20_000);
  ws.frames(msg("m1", 1)); // traffic postpones the ping
  await clock.advance(24_000);
  assert.deepEqual(ws.sent.filter((f) => f.type === "ping"), []);
  await clock.advance(1_000);
  assert.deepEqual(ws.sent.filter((f) => f.type === "ping"), [{ type: "ping" }]);
  ws.frames({ type: "pong" });
  await clock.advance(10_000);
  assert.equal(c.state, "open", "the pong kept it");
  await clock.advance(25_000);
  assert.equal(ws.sent.filter((f) => f.type === "ping").length, 2);
  await clock.advance(10_000); // no answer
  assert.deepEqual(ws.closedByClient, { code: 4000, reason: "ping timeout" });
  assert.equal(rec.closes.at(-1).code, 4000);
  assert.equal(c.state, "reconnecting");
  await clock.advance(rec.states.at(-1).delayMs);
  assert.equal(net.sockets.length, 2);
  assert.equal(net.last().url.searchParams.get("cursor"), "c1");
});

test("error frames become ServerErrors; unusable frames are reported and skipped", async () => {
  const { c, net, rec } = setup();
  c.connect();
  await flush();
  net.last().hello();
  net.last().frames({ type: "error", code: "bad_ack", message: "ack needs an id" }, "{not json", msg("m1", 1), { type: "future_thing" }, msg("m2", 2));
  assert.deepEqual(rec.messages.map((m) => m.id), ["m1", "m2"]);
  assert.ok(rec.errors[0] instanceof ServerError);
  assert.equal(rec.errors[0].code, "bad_ack");
  assert.equal(rec.errors[1].code, "bad_frame");
  assert.equal(rec.errors.length, 2);
});

test("a listener that throws is reported and neither stops the others nor the stream", async () => {
  const { c, net, rec } = setup();
  const seen = [];
  c.on("message", (m) => {
    if (m.id === "m1") throw new Error("app bug");
  });
  c.on("message", (m) => seen.push(m.id));
  c.connect();
  await flush();
  net.last().hello();
  net.last().frames(msg("m1", 1), msg("m2", 2));
  assert.deepEqual(seen, ["m1", "m2"]);
  assert.equal(rec.errors[0].code, "listener_error");
  assert.equal(c.cursor, "c2");
});

test("disconnect stops reconnecting; connect starts again", async () => {
  const { c, clock, net, rec } = setup();
  c.connect();
  await flush();
  net.last().hello();
  net.last().serverClose(1006);
  c.disconnect();
  await clock.advance(60_000);
  assert.equal(net.sockets.length, 1);
  assert.equal(c.state, "closed");
  c.connect();
  await flush();
  assert.equal(net.sockets.length, 2);
  assert.deepEqual(
    rec.states.map((s) => s.s),
    ["connecting", "open", "reconnecting", "closed", "connecting"],
  );
});

test("a token function that fails is reported and retried with backoff", async () => {
  let fail = true;
  const { c, clock, net, rec } = setup({
    token: async () => {
      if (fail) throw new Error("auth server down");
      return jwt({ sub: "bob", exp: EXP_FAR });
    },
  });
  c.connect();
  await flush();
  assert.equal(rec.errors[0].code, "token_unavailable");
  assert.equal(c.state, "reconnecting");
  assert.equal(net.sockets.length, 0);
  fail = false;
  await clock.advance(rec.states.at(-1).delayMs);
  assert.equal(net.sockets.length, 1);
});

test("connect needs an edge URL and a WebSocket implementation", () => {
  assert.throws(() => new Courier({ token: "t" }).connect(), { code: "not_configured" });
  const saved = globalThis.WebSocket;
  try {
    globalThis.WebSocket = undefined;
    assert.throws(() => new Courier({ token: "t", edgeUrl: "http://e" }).connect(), { code: "not_configured", message: /ws package/ });
  } finally {
    globalThis.WebSocket = saved;
  }
  assert.throws(() => new Courier({}), { code: "invalid_argument" });
});

test("wsAuth query: the documented fallback puts the token in the URL and sends no auth frame", async () => {
  const { c, net } = setup({ wsAuth: "query" });
  c.connect();
  await flush();
  const ws = net.last();
  assert.ok(ws.url.searchParams.get("token").startsWith("ey"));
  ws.hello();
  assert.deepEqual(ws.sent, []);
});

test("first-frame auth refused: 1008 invalid token fetches a new token and retries; auth timeout retries with the same", async () => {
  let n = 0;
  const token = async () => jwt({ sub: "bob", exp: EXP_FAR, n: ++n });
  const { c, clock, net, rec } = setup({ token });
  c.connect();
  await flush();
  net.last().open();
  const first = net.last().token();
  net.last().serverClose(1008, "invalid token");
  assert.equal(rec.closes.at(-1).action, "refresh_token");
  await clock.advance(rec.states.at(-1).delayMs);
  assert.equal(n, 2, "a new token was fetched");
  net.last().open();
  assert.notEqual(net.last().token(), first);

  net.last().serverClose(1008, "auth timeout");
  assert.equal(rec.closes.at(-1).action, "reconnect");
  assert.ok(rec.states.at(-1).delayMs > 0);
  assert.equal(c.state, "reconnecting");

  const fixed = setup();
  fixed.c.connect();
  await flush();
  fixed.net.last().open();
  fixed.net.last().serverClose(1008, "invalid token");
  assert.equal(fixed.c.state, "closed", "a fixed token that is refused is reported, not retried");
  assert.equal(fixed.rec.errors.at(-1).code, "token_expired");
});
