import { test } from "node:test";
import assert from "node:assert/strict";

import { backoffDelay, classifyClose, decodeToken } from "../dist/index.js";
import { splitFrames } from "../dist/frames.js";
import { RecentIds } from "../dist/dedupe.js";
import { parseRetryAfter } from "../dist/rest.js";
import { jwt } from "./fakes.mjs";

test("backoffDelay: doubling from initialMs, capped, jitter within [ceiling*(1-j), ceiling]", () => {
  const o = { initialMs: 100, maxMs: 1000, factor: 2, jitter: 0.5 };
  assert.deepEqual([0, 1, 2, 3, 4, 5].map((a) => backoffDelay(a, o, () => 1)), [100, 200, 400, 800, 1000, 1000]);
  assert.deepEqual([0, 1, 4].map((a) => backoffDelay(a, o, () => 0)), [50, 100, 500]);
  assert.equal(backoffDelay(0, { ...o, jitter: 1 }, () => 0), 0);
  assert.equal(backoffDelay(0, { ...o, jitter: 0 }, () => 0.3), 100);
});

test("decodeToken reads sub and exp without verifying, and tolerates non-JWTs", () => {
  assert.deepEqual(decodeToken(jwt({ sub: "zoë", exp: 123, other: 1 })), { sub: "zoë", exp: 123 });
  assert.equal(decodeToken("opaque"), null);
  assert.equal(decodeToken("a.%%%.c"), null);
  assert.equal(decodeToken("a." + Buffer.from("[1]").toString("base64url") + ".c"), null);
});

test("splitFrames: one frame per line, blank lines ignored, bad parts reported in place", () => {
  const parts = splitFrames('{"type":"pong"}\n\n{"type":"synced","cursor":"c1"}\n{oops\n{"type":"message","cursor":"c2","message":{"id":"m","from":"a"}}\n{"type":"message","message":{"id":"x","from":"a"}}');
  assert.deepEqual(parts.map((p) => p.type ?? "error:" + p.error), ["pong", "synced", "error:not JSON", "message", "error:message frame without a cursor"]);
  assert.deepEqual(parts[3].message.to, []);
  assert.equal(parts[3].message.to_count, 0);
});

test("classifyClose names each code's meaning and action", () => {
  const cases = [
    [1001, "going away", true, undefined, "reconnect_now"],
    [1006, "", true, undefined, "reconnect"],
    [1006, "", false, undefined, "reconnect"],
    [1006, "", false, 401, "refresh_token"],
    [1006, "", false, 429, "reconnect"],
    [1008, "send queue overflow", true, undefined, "reconnect"],
    [1008, "client not reading", true, undefined, "reconnect"],
    [1008, "token expired", true, undefined, "refresh_token"],
    [1008, "too many bad frames", true, undefined, "stop"],
    [1008, "invalid token", false, undefined, "refresh_token"],
    [1008, "auth timeout", false, undefined, "reconnect"],
    [1008, "auth frame expected", false, undefined, "stop"],
    [1013, "too many sessions for this user", false, undefined, "reconnect"],
    [1009, "", true, undefined, "stop"],
    [1011, "resume failed", true, undefined, "reconnect"],
    [4000, "ping timeout", true, undefined, "reconnect"],
  ];
  for (const [code, reason, opened, status, action] of cases) {
    const v = classifyClose(code, reason, opened, status);
    assert.equal(v.action, action, `${code} ${reason}`);
    assert.ok(v.meaning.length > 5);
  }
  assert.match(classifyClose(1006, "", false).meaning, /refused/);
});

test("RecentIds forgets the oldest beyond its capacity", () => {
  const r = new RecentIds(2);
  assert.equal(r.add("a"), true);
  assert.equal(r.add("a"), false);
  r.add("b");
  r.add("c");
  assert.equal(r.has("a"), false);
  assert.equal(r.has("b") && r.has("c"), true);
  assert.equal(r.size, 2);
});

test("parseRetryAfter: seconds or an HTTP date", () => {
  assert.equal(parseRetryAfter("3"), 3000);
  assert.equal(parseRetryAfter(null), undefined);
  assert.equal(parseRetryAfter("soon"), undefined);
  assert.equal(parseRetryAfter(new Date(10_000).toUTCString(), 4_000), 6000);
});
