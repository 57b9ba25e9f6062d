// Test doubles for the unit tests: a manual clock, a scripted WebSocket and
// a scripted fetch. They stand in for time and the network only; the code
// under test is the library's real code (dist/).

/** Lets every pending promise chain run. */
export async function flush() {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

/** A clock whose time moves only when the test says so. */
export class FakeClock {
  constructor(start = Date.UTC(2026, 0, 1)) {
    this.t = start;
    this.timers = [];
    this.seq = 0;
    this.rand = 0.5;
  }
  now() {
    return this.t;
  }
  setTimeout(fn, ms) {
    const id = ++this.seq;
    this.timers.push({ id, at: this.t + Math.max(0, ms), fn });
    return id;
  }
  clearTimeout(id) {
    this.timers = this.timers.filter((x) => x.id !== id);
  }
  random() {
    return this.rand;
  }
  /** Moves time forward by ms, firing due timers in order. */
  async advance(ms) {
    const end = this.t + ms;
    for (;;) {
      await flush();
      const due = this.timers.filter((x) => x.at <= end).sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (!due) break;
      this.timers = this.timers.filter((x) => x !== due);
      this.t = due.at;
      due.fn();
    }
    this.t = end;
    await flush();
  }
  /** Settles promise, advancing time from timer to timer as it waits. */
  async drive(promise, limitMs = 10 * 60_000) {
    let done = false;
    const p = promise.finally(() => {
      done = true;
    });
    p.catch(() => {});
    const start = this.t;
    while (!done) {
      await flush();
      if (done) break;
      const next = this.timers.sort((a, b) => a.at - b.at)[0];
      if (!next || next.at - start > limitMs) throw new Error("drive: the promise waits for nothing the clock can move");
      await this.advance(next.at - this.t);
    }
    return p;
  }
}

/** A scripted WebSocket: the test plays the server. */
export function fakeSockets() {
  const sockets = [];
  class FakeSocket {
    constructor(url) {
      this.url = new URL(url);
      this.readyState = 0;
      this.sent = [];
      this.closedByClient = null;
      this.onopen = this.onmessage = this.onclose = this.onerror = null;
      sockets.push(this);
    }
    send(data) {
      if (this.readyState !== 1) throw new Error("send on a socket that is not open");
      this.sent.push(JSON.parse(data));
    }
    close(code, reason) {
      this.closedByClient = { code, reason };
      this.readyState = 2;
    }
    // ---- the server's side
    open() {
      this.readyState = 1;
      this.onopen?.({});
    }
    /** Sends frames in one WebSocket message, newline-separated (batch=1). */
    frames(...fs) {
      this.onmessage?.({ data: fs.map((f) => (typeof f === "string" ? f : JSON.stringify(f))).join("\n") });
    }
    hello(user = "bob", pod = "edge-a", resumed = this.url.searchParams.has("cursor")) {
      this.open();
      this.frames({ type: "hello", session_id: "s" + sockets.indexOf(this), pod, user, resumed });
    }
    serverClose(code, reason = "") {
      this.readyState = 3;
      this.onclose?.({ code, reason, wasClean: code !== 1006 });
    }
    /** A connect that fails before the upgrade, as ws reports it (message) or a browser (none). */
    refuse(message) {
      this.readyState = 3;
      this.onerror?.(message ? { message } : {});
      this.onclose?.({ code: 1006, reason: "", wasClean: false });
    }
    acks() {
      return this.sent.filter((f) => f.type === "ack").map((f) => f.id);
    }
    /** The token the client presented: its first frame's, or the URL's (wsAuth "query"). */
    token() {
      return this.sent[0]?.type === "auth" ? this.sent[0].token : this.url.searchParams.get("token");
    }
  }
  return { WebSocket: FakeSocket, sockets, last: () => sockets[sockets.length - 1] };
}

/** A message frame as ws-edge sends it. */
export function msg(id, seq, extra = {}) {
  return {
    type: "message",
    cursor: "c" + seq,
    message: { id, from: "alice", to: ["bob"], payload: { n: seq }, content_type: "application/json", sent_at: "2026-01-01T00:00:00Z", ...extra },
  };
}

/** An unsigned JWT: the client decodes, it never verifies. */
export function jwt(claims) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  return b64({ alg: "HS256", typ: "JWT" }) + "." + b64(claims) + ".sig";
}

/** A scripted fetch: each call takes the next answer (a function of the request). */
export function fakeFetch(...answers) {
  const calls = [];
  const fn = async (url, init) => {
    calls.push({ url, method: init.method, headers: init.headers, body: init.body });
    const a = answers.shift();
    if (!a) throw new Error("fakeFetch: no answer left for " + init.method + " " + url);
    return a({ url, init });
  };
  fn.calls = calls;
  return fn;
}

export const json = (status, body, headers = {}) => () =>
  new Response(JSON.stringify(body), { status, headers: { "Content-Type": status >= 400 ? "application/problem+json" : "application/json", ...headers } });

export const networkDown = () => () => Promise.reject(new TypeError("fetch failed"));
