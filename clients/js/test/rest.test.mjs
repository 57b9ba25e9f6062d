import { test } from "node:test";
import assert from "node:assert/strict";

import { Courier, CourierError, HttpError } from "../dist/index.js";
import { FakeClock, fakeFetch, json, jwt, networkDown } from "./fakes.mjs";

const TOKEN = jwt({ sub: "alice", exp: Date.UTC(2030, 0, 1) / 1000 });
const accepted = (id) => json(202, { id, accepted_at: "2026-01-01T00:00:00Z" });
const problem = (status, code, headers) =>
  json(status, { type: "urn:courier:problem:" + code, title: code, status, code, detail: "because", request_id: "req-1" }, headers);

function client(fetch, opts = {}) {
  const clock = new FakeClock();
  const c = new Courier({ gatewayUrl: "http://gw.example/", token: TOKEN, fetch, clock, ...opts });
  return { c, clock };
}

test("send posts the body with a bearer token and a generated idempotency key", async () => {
  const f = fakeFetch(accepted("id1"));
  const { c, clock } = client(f);
  const res = await clock.drive(c.send(["bob", "carol"], { text: "hi" }));
  assert.deepEqual({ ...res, idempotencyKey: typeof res.idempotencyKey }, { id: "id1", acceptedAt: "2026-01-01T00:00:00Z", idempotencyKey: "string", attempts: 1 });
  const call = f.calls[0];
  assert.equal(call.url, "http://gw.example/v1/messages");
  assert.equal(call.method, "POST");
  assert.equal(call.headers.Authorization, "Bearer " + TOKEN);
  assert.equal(call.headers["Content-Type"], "application/json");
  assert.match(call.headers["Idempotency-Key"], /^[0-9a-f-]{32,36}$/);
  assert.equal(call.headers["Idempotency-Key"], res.idempotencyKey);
  assert.deepEqual(JSON.parse(call.body), { to: ["bob", "carol"], payload: { text: "hi" } });

  // A single recipient may be a string; each send gets its own key.
  const g = fakeFetch(accepted("id2"), accepted("id3"));
  const h = client(g);
  const a = await h.clock.drive(h.c.send("bob", 1));
  const b = await h.clock.drive(h.c.send("bob", 2, { contentType: "application/vnd.x+json" }));
  assert.notEqual(a.idempotencyKey, b.idempotencyKey);
  assert.deepEqual(JSON.parse(g.calls[1].body), { to: ["bob"], payload: 2, content_type: "application/vnd.x+json" });
});

test("send retries 503 and network failures with the same key, honouring Retry-After", async () => {
  const f = fakeFetch(problem(503, "unavailable", { "Retry-After": "2" }), networkDown(), accepted("same"));
  const { c, clock } = client(f);
  const t0 = clock.now();
  const res = await clock.drive(c.send("bob", { n: 1 }, { idempotencyKey: "k-1" }));
  assert.equal(res.id, "same");
  assert.equal(res.attempts, 3);
  assert.deepEqual(f.calls.map((x) => x.headers["Idempotency-Key"]), ["k-1", "k-1", "k-1"]);
  assert.ok(clock.now() - t0 >= 2000, "waited at least Retry-After");
});

test("an attempt that hangs times out and is retried", async () => {
  const f = fakeFetch(({ init }) => new Promise((_, reject) => init.signal.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError")))), accepted("late"));
  const { c, clock } = client(f, { retry: { timeoutMs: 1000 } });
  const res = await clock.drive(c.send("bob", 1));
  assert.equal(res.id, "late");
  assert.equal(res.attempts, 2);
});

test("send gives up after maxAttempts with the last error, typed", async () => {
  const f = fakeFetch(problem(503, "unavailable"), problem(503, "unavailable"), problem(503, "unavailable"));
  const { c, clock } = client(f, { retry: { maxAttempts: 3 } });
  await assert.rejects(clock.drive(c.send("bob", 1)), (err) => {
    assert.ok(err instanceof HttpError);
    assert.ok(err instanceof CourierError);
    assert.equal(err.status, 503);
    assert.equal(err.code, "unavailable");
    assert.equal(err.requestId, "req-1");
    assert.equal(err.problem.detail, "because");
    return true;
  });
  assert.equal(f.calls.length, 3);

  const g = fakeFetch(networkDown(), networkDown());
  const h = client(g, { retry: { maxAttempts: 2 } });
  await assert.rejects(h.clock.drive(h.c.send("bob", 1)), { code: "network_error" });
});

test("client errors are not retried and carry the server's problem code", async () => {
  for (const [status, code] of [
    [400, "invalid_request"],
    [413, "payload_too_large"],
    [415, "unsupported_media_type"],
    [404, "not_found"],
  ]) {
    const f = fakeFetch(problem(status, code));
    const { c, clock } = client(f);
    await assert.rejects(clock.drive(c.send("bob", 1)), { name: "HttpError", status, code });
    assert.equal(f.calls.length, 1);
  }
});

test("429 is retried after Retry-After, unless that is longer than maxRetryAfterMs", async () => {
  const f = fakeFetch(problem(429, "rate_limited", { "Retry-After": "1" }), accepted("ok"));
  const { c, clock } = client(f);
  assert.equal((await clock.drive(c.send("bob", 1))).id, "ok");

  const g = fakeFetch(problem(429, "rate_limited", { "Retry-After": "120" }));
  const h = client(g);
  await assert.rejects(h.clock.drive(h.c.send("bob", 1)), (err) => err.code === "rate_limited" && err.retryAfterMs === 120_000);
  assert.equal(g.calls.length, 1);
});

test("a 401 is retried once with a fresh token when a token function is given", async () => {
  let n = 0;
  const token = () => jwt({ sub: "alice", exp: Date.UTC(2030, 0, 1) / 1000, n: ++n });
  const f = fakeFetch(problem(401, "unauthenticated"), accepted("ok"));
  const { c, clock } = client(f, { token });
  assert.equal((await clock.drive(c.send("bob", 1))).id, "ok");
  assert.notEqual(f.calls[0].headers.Authorization, f.calls[1].headers.Authorization);

  const g = fakeFetch(problem(401, "unauthenticated"), problem(401, "unauthenticated"));
  const h = client(g, { token });
  await assert.rejects(h.clock.drive(h.c.send("bob", 1)), { code: "unauthenticated", status: 401 });
  assert.equal(g.calls.length, 2);

  const s = fakeFetch(problem(401, "unauthenticated"));
  const fixed = client(s); // a fixed token: nothing to refresh
  await assert.rejects(fixed.clock.drive(fixed.c.send("bob", 1)), { code: "unauthenticated" });
  assert.equal(s.calls.length, 1);
});

test("an error answer without a problem body (a proxy's page) is typed by its status", async () => {
  const f = fakeFetch(() => new Response("<html>bad gateway</html>", { status: 502 }), accepted("ok"));
  const { c, clock } = client(f);
  assert.equal((await clock.drive(c.send("bob", 1))).attempts, 2);
  const g = fakeFetch(() => new Response("<html>oops</html>", { status: 500 }));
  const h = client(g);
  await assert.rejects(h.clock.drive(h.c.send("bob", 1)), { code: "internal", status: 500 });
  const k = fakeFetch(() => new Response("not json", { status: 200 }));
  const m = client(k);
  await assert.rejects(m.clock.drive(m.c.sync()), { code: "bad_response" });
});

test("send refuses bad arguments before any request", async () => {
  const f = fakeFetch();
  const { c } = client(f);
  await assert.rejects(c.send([], 1), { code: "invalid_argument" });
  await assert.rejects(c.send("bob", undefined), { code: "invalid_argument" });
  await assert.rejects(c.send("bob", null), { code: "invalid_argument" });
  await assert.rejects(c.send("bob", 1, { idempotencyKey: "é" }), { code: "invalid_argument" });
  await assert.rejects(new Courier({ token: "t" }).send("bob", 1), { code: "not_configured" });
  assert.equal(f.calls.length, 0);
});

test("an aborted send stops retrying", async () => {
  const ctl = new AbortController();
  const f = fakeFetch(problem(503, "unavailable"));
  const { c, clock } = client(f);
  const p = c.send("bob", 1, { signal: ctl.signal });
  p.catch(() => {});
  await clock.advance(0);
  ctl.abort();
  await assert.rejects(p, { code: "aborted" });
  assert.equal(f.calls.length, 1);
});

test("sync pages the inbox and get reads one message's state", async () => {
  const m = (id, cursor) => ({ id, from: "bob", to: ["alice"], payload: { id }, content_type: "application/json", sent_at: "2026-01-01T00:00:00Z", cursor });
  const f = fakeFetch(
    json(200, { messages: [m("a", "c1"), m("b", "c2")], next_cursor: "c2" }),
    json(200, { messages: [], next_cursor: "c2" }),
    json(200, { message: m("a"), state: "delivered", delivered_to: ["alice"], delivered_count: 1 }),
    // A send to 40 users: delivered_to is empty by the recipient list rule, delivered_count is not.
    json(200, { message: { ...m("big"), to: [], to_count: 40 }, state: "delivered", delivered_to: [], delivered_count: 25 }),
  );
  const { c, clock } = client(f);
  const p1 = await clock.drive(c.sync({ limit: 2 }));
  assert.deepEqual(p1.messages.map((x) => [x.id, x.cursor, x.to_count]), [
    ["a", "c1", 1],
    ["b", "c2", 1],
  ]);
  assert.equal(p1.nextCursor, "c2");
  const p2 = await clock.drive(c.sync({ cursor: p1.nextCursor, limit: 2 }));
  assert.deepEqual(p2, { messages: [], nextCursor: "c2" });
  const v = await clock.drive(c.get("a"));
  assert.deepEqual(
    { id: v.message.id, state: v.state, deliveredTo: v.deliveredTo, deliveredCount: v.deliveredCount },
    { id: "a", state: "delivered", deliveredTo: ["alice"], deliveredCount: 1 },
  );
  const big = await clock.drive(c.get("big"));
  assert.deepEqual({ to: big.message.to, toCount: big.message.to_count, deliveredTo: big.deliveredTo, deliveredCount: big.deliveredCount },
    { to: [], toCount: 40, deliveredTo: [], deliveredCount: 25 });
  assert.deepEqual(f.calls.map((x) => x.url), [
    "http://gw.example/v1/messages?limit=2",
    "http://gw.example/v1/messages?cursor=c2&limit=2",
    "http://gw.example/v1/messages/a",
    "http://gw.example/v1/messages/big",
  ]);
  assert.ok(f.calls.every((x) => x.method === "GET"));
});
