// Integration tests of the client against a real Courier cluster. Run by
// tests/e2e TestJSClient (make test), which starts the gateway (behind a
// fault-injecting proxy), the worker and two edges (behind a round-robin
// balancer) on private emulators, drives the edge faults, and passes the
// URLs in the environment.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import WebSocket from "ws";

import { Courier } from "../dist/index.js";

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: this script is run by tests/e2e TestJSClient (make test)`);
  return v;
}
const EDGE = need("COURIER_EDGE_URL");
const GATEWAY = need("COURIER_GATEWAY_URL");
const CONTROL = need("COURIER_CONTROL_URL");
const RESULT = need("COURIER_RESULT_FILE");

async function control(path, init = {}) {
  const res = await fetch(CONTROL + path, { method: "POST", ...init });
  if (!res.ok) throw new Error(`control ${path}: ${res.status} ${await res.text()}`);
  return res;
}

/** A token source: a new token from the test's signing key on every call. */
function tokens(user, ttl = "1h") {
  const fn = async () => {
    fn.calls++;
    return (await control(`/token?user=${encodeURIComponent(user)}&ttl=${ttl}`)).text();
  };
  fn.calls = 0;
  return fn;
}

/** Waits for a condition, polling, up to a deadline. */
async function waitFor(what, cond, ms = 60_000) {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * A recording client: every message, close and state, plus the raw
 * message frames the server sent (seen below the library's dedupe, so a
 * duplicate sent by the server, i.e. a cursor the library got wrong, shows).
 */
function recorder(user, opts = {}) {
  const raw = [];
  class TapSocket extends WebSocket {
    constructor(url) {
      super(url);
      this.addEventListener("message", (ev) => {
        for (const line of String(ev.data).split("\n")) {
          if (!line) continue;
          const f = JSON.parse(line);
          if (f.type === "message") raw.push(f.message.id);
        }
      });
    }
  }
  const token = opts.token ?? tokens(user);
  const c = new Courier({
    edgeUrl: EDGE,
    gatewayUrl: GATEWAY,
    token,
    WebSocket: TapSocket,
    // The real schedule, shortened so that a test waits seconds, not minutes.
    reconnect: { initialMs: 100, maxMs: 2000 },
    ...opts,
  });
  const r = { c, token, raw, received: [], closes: [], states: [], errors: [], synced: 0 };
  c.on("message", (m) => r.received.push(m.id));
  c.on("close", (i) => r.closes.push(i));
  c.on("state", (s) => r.states.push(s));
  c.on("error", (e) => r.errors.push(e));
  c.on("synced", () => r.synced++);
  return r;
}

const clients = [];
const sentToBob = []; // every id sent to bob, in order: TestJSClient checks his inbox against it
const retriedKeys = [];
const alice = new Courier({ gatewayUrl: GATEWAY, token: tokens("alice") });
const bob = recorder("bob");
clients.push(bob);

after(() => {
  for (const r of clients) r.c.disconnect();
  writeFileSync(RESULT, JSON.stringify({ sent_to_bob: sentToBob, retried_keys: retriedKeys }));
});

async function sendToBob(payload, opts) {
  const res = await alice.send("bob", payload, opts);
  sentToBob.push(res.id);
  return res;
}

test("through a rolling restart of both edges and a SIGKILL, every message arrives exactly once and in order", async () => {
  // Report every state, and progress every ten messages, to the Go test, in
  // order: it kills the pod the client is on, and lets messages flow between
  // faults.
  let reports = Promise.resolve();
  const report = () => {
    const body = JSON.stringify({ state: bob.c.state, pod: bob.c.session?.pod ?? "", received: bob.received.length });
    reports = reports.then(() => control("/report", { body })).catch(() => {});
  };
  bob.c.on("state", report);
  bob.c.on("message", () => bob.received.length % 10 === 0 && report());
  bob.c.connect();
  // Live-only start: what is sent before the session's synced would not be in it.
  await waitFor("bob's first session", () => bob.synced > 0);

  let stop = false;
  let n = 0;
  const sender = (async () => {
    while (!stop) {
      await sendToBob({ n: n++ });
      await new Promise((r) => setTimeout(r, 30)); // pacing, so the edges' restarts fall among the messages
    }
  })();
  const faults = control("/faults"); // returns when the Go test has done them
  await Promise.race([faults, sender]);
  stop = true;
  await sender;
  for (let i = 0; i < 5; i++) await sendToBob({ n: n++, after: true });

  // In order: once the last one is in, all should be (a gap fails at once below).
  const lastSent = sentToBob.at(-1);
  await waitFor(`bob receives the last of ${sentToBob.length} messages (has ${bob.received.length})`, () => bob.received.includes(lastSent), 120_000);
  assert.deepEqual(bob.received, sentToBob, "every message once, in order");
  assert.deepEqual(bob.raw, sentToBob, "the server sent none twice: the cursor was right every time");
  const drained = bob.closes.filter((c) => c.code === 1001);
  const lost = bob.closes.filter((c) => c.code === 1006 && c.opened);
  assert.ok(drained.length >= 1, "a 1001 drain reached the client: " + JSON.stringify(bob.closes));
  assert.ok(lost.length >= 1, "the SIGKILL cut the client's session: " + JSON.stringify(bob.closes));
  assert.ok(drained.every((c) => c.action === "reconnect_now"));
  assert.equal(bob.c.state, "open");

  // Acks reach the sender: the last message becomes delivered.
  const last = sentToBob.at(-1);
  await waitFor("the last message is marked delivered", async () => (await alice.get(last)).state === "delivered", 30_000);
  const view = await alice.get(last);
  assert.deepEqual(view.deliveredTo, ["bob"]);
});

test("a send whose answer was lost after the gateway accepted it (503, dropped connection) is retried with its key and stored once", async () => {
  const before = bob.c.cursor;
  const ids = [];
  for (const mode of ["503", "drop"]) {
    await control("/gateway/fault?mode=" + mode);
    const res = await sendToBob({ retried: mode });
    assert.equal(res.attempts, 2, `${mode}: one lost answer, one retry`);
    retriedKeys.push(res.idempotencyKey);
    ids.push(res.id);
  }
  const log = await (await fetch(CONTROL + "/gateway/log")).json();
  for (const key of retriedKeys) {
    assert.deepEqual(log.filter((s) => s.key === key).map((s) => s.upstream), [202, 202], "both attempts reached the gateway with one key");
  }
  // A marker sent after them: once it is in, a duplicate of the retried ones would be too.
  const marker = await sendToBob({ marker: true });
  await waitFor("the marker arrives", () => bob.received.includes(marker.id));
  for (const id of ids) {
    assert.equal(bob.raw.filter((x) => x === id).length, 1, `${id} delivered once`);
  }
  const page = await bob.c.sync({ cursor: before, limit: 200 });
  assert.deepEqual(page.messages.map((m) => m.id), [...ids, marker.id], "stored once each, in order");
  assert.deepEqual(page.messages[0].payload, { retried: "503" });
  assert.equal(page.nextCursor, page.messages.at(-1).cursor);
});

test("an expired token closes the session (1008); the client fetches a new one and resumes with nothing lost", async () => {
  const carol = recorder("carol", { token: tokens("carol", "3s"), tokenRefreshMarginMs: 500 });
  clients.push(carol);
  carol.c.connect();
  await waitFor("carol's first session", () => carol.synced > 0);
  const sent = [];
  const sendToCarol = async (i) => sent.push((await alice.send("carol", { i })).id);
  for (let i = 0; i < 3; i++) await sendToCarol(i);
  await waitFor("the token expires", () => carol.closes.some((c) => c.code === 1008 && c.reason === "token expired"), 20_000);
  for (let i = 3; i < 6; i++) await sendToCarol(i);
  await waitFor("carol receives all six", () => carol.received.length >= 6);
  assert.deepEqual(carol.received, sent);
  assert.deepEqual(carol.raw, sent);
  assert.ok(carol.token.calls >= 2, "a new token was fetched");
  const expiry = carol.closes.find((c) => c.reason === "token expired");
  assert.equal(expiry.action, "refresh_token");
  assert.deepEqual(carol.errors, [], "nothing went wrong on the way");
});

test("errors carry the server's problem code", async () => {
  await assert.rejects(alice.send("bob", { big: "x".repeat(70_000) }), { name: "HttpError", status: 413, code: "payload_too_large" });
  await assert.rejects(alice.send(["not a valid user id!"], 1), { name: "HttpError", status: 400, code: "invalid_request" });
  await assert.rejects(alice.get("0123456789abcdef0123456789abcdef"), { name: "HttpError", status: 404, code: "not_found" });
  const stranger = new Courier({ gatewayUrl: GATEWAY, token: "not-a-jwt" });
  await assert.rejects(stranger.sync(), { name: "HttpError", status: 401, code: "unauthenticated" });
});
