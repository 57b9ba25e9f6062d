// The gateway's REST API: send with an idempotency key and retries, inbox
// sync, one message's state.

import { backoffDelay, type BackoffOptions } from "./backoff.js";
import { sleep, type Clock } from "./clock.js";
import { CourierError, HttpError, codeForStatus, type Problem } from "./errors.js";
import { parseMessage, type InboxMessage, type Message } from "./frames.js";
import { errorText, type TokenManager } from "./token.js";

/** How REST calls retry. */
export interface RetryOptions {
  /** Attempts in all, the first included. */
  maxAttempts: number;
  /** Backoff between attempts. */
  initialMs: number;
  maxMs: number;
  /** Each attempt's own deadline. */
  timeoutMs: number;
  /** A Retry-After longer than this is not waited for: the error is returned. */
  maxRetryAfterMs: number;
}

export interface SendOptions {
  /**
   * The key that makes retries safe: the same key from the same sender
   * gives the same message id and one delivery. Generated when absent;
   * pass your own to retry across page loads or app restarts.
   */
  idempotencyKey?: string;
  /** Media type of the payload (application/json when absent). */
  contentType?: string;
  /**
   * The conversation it belongs to (1–128 of `[A-Za-z0-9._:@+=-]`, not
   * starting with `d.`). Absent: the conversation of its members, whose id
   * conversationId() computes.
   */
  conversationId?: string;
  signal?: AbortSignal;
}

export interface SendResult {
  id: string;
  /** RFC 3339: when the gateway accepted it. */
  acceptedAt: string;
  /** The key used (generated or given): keep it to retry later. */
  idempotencyKey: string;
  /** How many requests it took. */
  attempts: number;
}

export interface SyncOptions {
  /** Start after this cursor; the inbox's start when absent. */
  cursor?: string;
  /** Page size, 1 to 200 (the server's default 50 when absent). */
  limit?: number;
  signal?: AbortSignal;
}

export interface SyncPage {
  /** Oldest first, each with its cursor. */
  messages: InboxMessage[];
  /** Resume here (the given cursor when the page is empty). */
  nextCursor: string;
}

export interface MessageView {
  message: Message;
  /** `delivered` once a recipient received it on a WebSocket (and acked it). */
  state: "stored" | "delivered" | string;
  /** Who acked it; empty for a send to more than 16 users (the recipient list rule). */
  deliveredTo: string[];
  /** How many recipients acked it: always set, whatever the size of the send. */
  deliveredCount: number;
  /** How many recipients read it (marked their conversation read at or past it); 0 from servers without read state. */
  readCount: number;
  /** The same as deliveredCount, under the REST API's name (GET /v1/messages/{id}). */
  delivered_count: number;
  /** The same as readCount, under the REST API's name. */
  read_count: number;
}

/** One conversation of the caller, as GET /v1/conversations renders it. */
export interface Conversation {
  id: string;
  /** The newest message, with its cursor in the caller's inbox. */
  last_message: InboxMessage | null;
  last_cursor: string;
  /** Messages from others after read_cursor. */
  unread_count: number;
  /** How far the caller has read ("" when nothing). */
  read_cursor: string;
  /** RFC 3339. */
  updated_at: string;
}

export interface ConversationsOptions {
  /** Page size (the server's default when absent). */
  limit?: number;
  /** The nextCursor of the previous page. */
  cursor?: string;
  signal?: AbortSignal;
}

export interface ConversationsPage {
  /** Most recent first. */
  conversations: Conversation[];
  /** The next (older) page; "" at the end. */
  nextCursor: string;
}

export interface HistoryOptions {
  /** The page just before this cursor (scrolling back). */
  before?: string;
  /** The page just after this cursor (catching up). */
  after?: string;
  limit?: number;
  signal?: AbortSignal;
}

export interface HistoryPage {
  /** Oldest first, each with its cursor in the caller's inbox. */
  messages: InboxMessage[];
  /** Whether there is more in the direction asked (older for before and the newest page, newer for after). */
  hasMore: boolean;
  /** The first message's cursor: pass as `before` for the page before this one. */
  prevCursor: string;
  /** The last message's cursor: pass as `after` for the page after this one. */
  nextCursor: string;
  /**
   * Set when the cursor asked for is behind what the server still keeps
   * (410 cursor_expired): this is the newest page instead, and the caller
   * should replace what it shows rather than append, so no gap is hidden.
   */
  expired?: boolean;
}

export interface ReadState {
  conversationId: string;
  /** The read marker now (never moves back: an older cursor leaves it). */
  readCursor: string;
  unreadCount: number;
}

/** Whom a signal goes to: users, or the members of a conversation. */
export type SignalTarget = { to: string[]; conversation?: undefined } | { conversation: string; to?: undefined };

export type SignalOptions = SignalTarget & {
  /** 1–32 of `[a-z0-9._-]`, e.g. `typing`. */
  kind: string;
  /** Any JSON value; the whole frame must stay within 1 KiB. */
  data?: unknown;
};

/** A user's presence, as GET /v1/presence answers (users the caller may not watch read as offline). */
export interface Presence {
  user: string;
  online: boolean;
  last_seen: string | null;
}

interface Answer {
  status: number;
  body: unknown;
  headers: Headers;
}

type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

export class RestClient {
  constructor(
    private readonly baseUrl: string | undefined,
    private readonly fetchFn: FetchLike | undefined,
    private readonly tokens: TokenManager,
    private readonly clock: Clock,
    private readonly retry: RetryOptions,
  ) {}

  async send(to: string | string[], payload: unknown, opts: SendOptions = {}): Promise<SendResult> {
    const recipients = typeof to === "string" ? [to] : to;
    if (!Array.isArray(recipients) || recipients.length === 0 || !recipients.every((r) => typeof r === "string" && r !== "")) {
      throw new CourierError("invalid_argument", "send: `to` must be a user id or a non-empty array of user ids");
    }
    if (payload === undefined || payload === null) {
      throw new CourierError("invalid_argument", "send: the payload must be a JSON value other than null");
    }
    const key = opts.idempotencyKey ?? newIdempotencyKey();
    if (!/^[\x20-\x7e]{1,128}$/.test(key)) {
      throw new CourierError("invalid_argument", "send: the idempotency key must be 1 to 128 printable ASCII characters");
    }
    const body: Record<string, unknown> = { to: recipients, payload };
    if (opts.contentType !== undefined) body.content_type = opts.contentType;
    if (opts.conversationId !== undefined) {
      checkConversation("send", opts.conversationId);
      if (opts.conversationId.startsWith("d.")) {
        throw new CourierError("invalid_argument", "send: conversation ids starting with `d.` are derived by the server: leave conversationId out");
      }
      body.conversation_id = opts.conversationId;
    }
    const { answer, attempts } = await this.request("POST", "/v1/messages", {
      body: JSON.stringify(body),
      headers: { "Content-Type": "application/json", "Idempotency-Key": key },
      signal: opts.signal,
    });
    const b = answer.body as { id?: unknown; accepted_at?: unknown } | null;
    if (!b || typeof b.id !== "string") throw new CourierError("bad_response", "send: the gateway's answer has no id");
    return { id: b.id, acceptedAt: typeof b.accepted_at === "string" ? b.accepted_at : "", idempotencyKey: key, attempts };
  }

  async sync(opts: SyncOptions = {}): Promise<SyncPage> {
    const q = new URLSearchParams();
    if (opts.cursor) q.set("cursor", opts.cursor);
    if (opts.limit !== undefined) q.set("limit", String(opts.limit));
    const qs = q.toString();
    const { answer } = await this.request("GET", "/v1/messages" + (qs ? "?" + qs : ""), { signal: opts.signal });
    const b = answer.body as { messages?: unknown; next_cursor?: unknown } | null;
    if (!b || !Array.isArray(b.messages) || typeof b.next_cursor !== "string") {
      throw new CourierError("bad_response", "sync: the gateway's answer is not an inbox page");
    }
    return { messages: inboxMessages("sync", b.messages), nextCursor: b.next_cursor };
  }

  async conversations(opts: ConversationsOptions = {}): Promise<ConversationsPage> {
    const q = new URLSearchParams();
    if (opts.limit !== undefined) q.set("limit", String(opts.limit));
    if (opts.cursor) q.set("cursor", opts.cursor);
    const qs = q.toString();
    const { answer } = await this.request("GET", "/v1/conversations" + (qs ? "?" + qs : ""), { signal: opts.signal });
    const b = answer.body as { conversations?: unknown; next_cursor?: unknown } | null;
    if (!b || !Array.isArray(b.conversations)) throw new CourierError("bad_response", "conversations: the gateway's answer is not a conversation page");
    const out: Conversation[] = [];
    for (const raw of b.conversations as Array<Record<string, unknown> | null>) {
      if (!raw || typeof raw.id !== "string" || raw.id === "") throw new CourierError("bad_response", "conversations: a conversation without an id");
      const lastCursor = typeof raw.last_cursor === "string" ? raw.last_cursor : "";
      let last: InboxMessage | null = null;
      if (raw.last_message) {
        const m = parseMessage(raw.last_message);
        if (typeof m === "string") throw new CourierError("bad_response", `conversations: unusable last message of ${raw.id} (${m})`);
        const c = (raw.last_message as { cursor?: unknown }).cursor;
        last = { ...m, cursor: typeof c === "string" ? c : lastCursor };
      }
      out.push({
        id: raw.id,
        last_message: last,
        last_cursor: lastCursor,
        unread_count: typeof raw.unread_count === "number" ? raw.unread_count : 0,
        read_cursor: typeof raw.read_cursor === "string" ? raw.read_cursor : "",
        updated_at: typeof raw.updated_at === "string" ? raw.updated_at : "",
      });
    }
    return { conversations: out, nextCursor: typeof b.next_cursor === "string" ? b.next_cursor : "" };
  }

  async history(conversation: string, opts: HistoryOptions = {}): Promise<HistoryPage> {
    checkConversation("history", conversation);
    if (opts.before && opts.after) throw new CourierError("invalid_argument", "history: give `before` or `after`, not both");
    const q = new URLSearchParams();
    if (opts.before) q.set("before", opts.before);
    if (opts.after) q.set("after", opts.after);
    if (opts.limit !== undefined) q.set("limit", String(opts.limit));
    const qs = q.toString();
    const path = "/v1/conversations/" + encodeURIComponent(conversation) + "/messages";
    let answer: Answer;
    try {
      ({ answer } = await this.request("GET", path + (qs ? "?" + qs : ""), { signal: opts.signal }));
    } catch (err) {
      // Behind what the server keeps: the newest page, marked, instead of a
      // page that would silently skip what expired in between.
      if (err instanceof HttpError && err.code === "cursor_expired" && (opts.before || opts.after)) {
        const newest = await this.history(conversation, { limit: opts.limit, signal: opts.signal });
        return { ...newest, expired: true };
      }
      throw err;
    }
    const b = answer.body as { messages?: unknown; has_more?: unknown; prev_cursor?: unknown; next_cursor?: unknown } | null;
    if (!b || !Array.isArray(b.messages)) throw new CourierError("bad_response", "history: the gateway's answer is not a message page");
    const messages = inboxMessages("history", b.messages);
    return {
      messages,
      hasMore: b.has_more === true,
      prevCursor: typeof b.prev_cursor === "string" ? b.prev_cursor : (messages[0]?.cursor ?? ""),
      nextCursor: typeof b.next_cursor === "string" ? b.next_cursor : (messages.at(-1)?.cursor ?? ""),
    };
  }

  async markRead(conversation: string, cursor: string, opts: { signal?: AbortSignal } = {}): Promise<ReadState> {
    checkConversation("markRead", conversation);
    if (typeof cursor !== "string" || cursor === "") throw new CourierError("invalid_argument", "markRead: a cursor (of a message of the conversation) is required");
    const { answer } = await this.request("POST", "/v1/conversations/" + encodeURIComponent(conversation) + "/read", {
      body: JSON.stringify({ cursor }),
      headers: { "Content-Type": "application/json" },
      signal: opts.signal,
    });
    const b = answer.body as { conversation_id?: unknown; read_cursor?: unknown; unread_count?: unknown } | null;
    if (!b || typeof b.read_cursor !== "string") throw new CourierError("bad_response", "markRead: the gateway's answer has no read_cursor");
    return {
      conversationId: typeof b.conversation_id === "string" ? b.conversation_id : conversation,
      readCursor: b.read_cursor,
      unreadCount: typeof b.unread_count === "number" ? b.unread_count : 0,
    };
  }

  /** POST /v1/signals: at most once, so never retried. */
  async signal(body: Record<string, unknown>, opts: { signal?: AbortSignal } = {}): Promise<void> {
    await this.request("POST", "/v1/signals", {
      body: JSON.stringify(body),
      headers: { "Content-Type": "application/json" },
      signal: opts.signal,
      noRetry: true,
    });
  }

  async presence(users: string[], opts: { signal?: AbortSignal } = {}): Promise<Presence[]> {
    checkUsers("presence", users);
    const { answer } = await this.request("GET", "/v1/presence?users=" + users.map(encodeURIComponent).join(","), { signal: opts.signal });
    const b = answer.body as { presence?: unknown } | null;
    if (!b || !Array.isArray(b.presence)) throw new CourierError("bad_response", "presence: the gateway's answer has no presence list");
    return (b.presence as Array<Record<string, unknown> | null>)
      .filter((p): p is Record<string, unknown> => !!p && typeof p.user === "string")
      .map((p) => ({ user: p.user as string, online: p.online === true, last_seen: typeof p.last_seen === "string" ? p.last_seen : null }));
  }

  async get(id: string, opts: { signal?: AbortSignal } = {}): Promise<MessageView> {
    if (typeof id !== "string" || id === "") throw new CourierError("invalid_argument", "get: an id is required");
    const { answer } = await this.request("GET", "/v1/messages/" + encodeURIComponent(id), { signal: opts.signal });
    const b = answer.body as { message?: unknown; state?: unknown; delivered_to?: unknown; delivered_count?: unknown; read_count?: unknown } | null;
    const m = parseMessage(b?.message);
    if (!b || typeof m === "string" || typeof b.state !== "string") {
      throw new CourierError("bad_response", "get: the gateway's answer is not a message view");
    }
    const deliveredTo = Array.isArray(b.delivered_to) ? b.delivered_to.filter((u): u is string => typeof u === "string") : [];
    // A gateway older than delivered_count sent only the list, which was then complete.
    const deliveredCount = typeof b.delivered_count === "number" ? b.delivered_count : deliveredTo.length;
    const readCount = typeof b.read_count === "number" ? b.read_count : 0;
    return { message: m, state: b.state, deliveredTo, deliveredCount, readCount, delivered_count: deliveredCount, read_count: readCount };
  }

  /**
   * One call with retries: network failures, per-attempt timeouts, 502,
   * 503, 504 and 429 (after its Retry-After) are retried; a 401 is retried
   * once with a fresh token when the token source can give one. Every
   * retried call is safe: GETs read, and sends carry their idempotency key.
   */
  private async request(
    method: string,
    path: string,
    init: { body?: string; headers?: Record<string, string>; signal?: AbortSignal | undefined; noRetry?: boolean },
  ): Promise<{ answer: Answer; attempts: number }> {
    if (!this.baseUrl) throw new CourierError("not_configured", "gatewayUrl is not set");
    const fetchFn = this.fetchFn;
    if (!fetchFn) throw new CourierError("not_configured", "no fetch: pass options.fetch");
    const url = this.baseUrl.replace(/\/+$/, "") + path;
    const backoff: BackoffOptions = { initialMs: this.retry.initialMs, maxMs: this.retry.maxMs, factor: 2, jitter: 0.5 };
    let refreshed = false;
    let forceToken = false;
    let last: unknown;
    for (let attempt = 1; ; attempt++) {
      throwIfAborted(init.signal);
      const token = await this.tokens.get(forceToken);
      forceToken = false;
      let wait: number;
      try {
        const answer = await this.once(fetchFn, url, method, token, init);
        if (answer.status >= 200 && answer.status < 300) return { answer, attempts: attempt };
        const err = httpError(answer);
        if (answer.status === 401 && this.tokens.refreshable && !refreshed) {
          refreshed = true;
          forceToken = true;
          last = err;
          attempt--; // a refused token is not a failed attempt
          continue;
        }
        if (![429, 502, 503, 504].includes(answer.status)) throw err;
        if (err.retryAfterMs !== undefined && err.retryAfterMs > this.retry.maxRetryAfterMs) throw err;
        last = err;
        wait = Math.max(err.retryAfterMs ?? 0, backoffDelay(attempt - 1, backoff, () => this.clock.random()));
      } catch (err) {
        if (err instanceof HttpError || (err instanceof CourierError && err.code !== "network_error" && err.code !== "timeout")) {
          throw err;
        }
        last = err;
        wait = backoffDelay(attempt - 1, backoff, () => this.clock.random());
      }
      if (attempt >= this.retry.maxAttempts || init.noRetry) throw last;
      try {
        await sleep(this.clock, wait, init.signal);
      } catch (reason) {
        throw abortedError(reason);
      }
    }
  }

  private async once(
    fetchFn: FetchLike,
    url: string,
    method: string,
    token: string,
    init: { body?: string; headers?: Record<string, string>; signal?: AbortSignal | undefined },
  ): Promise<Answer> {
    const ctl = new AbortController();
    let timedOut = false;
    const timer = this.clock.setTimeout(() => {
      timedOut = true;
      ctl.abort();
    }, this.retry.timeoutMs);
    const onAbort = () => ctl.abort(init.signal?.reason);
    init.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      const headers: Record<string, string> = { Accept: "application/json", Authorization: "Bearer " + token, ...init.headers };
      const req: RequestInit = { method, headers, signal: ctl.signal };
      if (init.body !== undefined) req.body = init.body;
      let res: Response;
      try {
        res = await fetchFn(url, req);
      } catch (err) {
        if (init.signal?.aborted) throw abortedError(init.signal.reason);
        if (timedOut) throw new CourierError("timeout", `${method} ${url}: no answer within ${this.retry.timeoutMs} ms`, { cause: err });
        throw new CourierError("network_error", `${method} ${url}: ${errorText(err)}`, { cause: err });
      }
      let text: string;
      try {
        text = await res.text();
      } catch (err) {
        if (init.signal?.aborted) throw abortedError(init.signal.reason);
        if (timedOut) throw new CourierError("timeout", `${method} ${url}: the answer did not finish within ${this.retry.timeoutMs} ms`, { cause: err });
        throw new CourierError("network_error", `${method} ${url}: reading the answer: ${errorText(err)}`, { cause: err });
      }
      let body: unknown = undefined;
      if (text !== "") {
        try {
          body = JSON.parse(text);
        } catch {
          body = undefined; // an HTML error page from a proxy, say: judged by the status
        }
      }
      if (res.ok && body === undefined && res.status !== 204) {
        throw new CourierError("bad_response", `${method} ${url}: answer ${res.status} is not JSON`);
      }
      return { status: res.status, body, headers: res.headers };
    } finally {
      this.clock.clearTimeout(timer);
      init.signal?.removeEventListener("abort", onAbort);
    }
  }
}

function inboxMessages(what: string, raws: unknown[]): InboxMessage[] {
  const messages: InboxMessage[] = [];
  for (const raw of raws) {
    const m = parseMessage(raw);
    const cursor = (raw as { cursor?: unknown } | null)?.cursor;
    if (typeof m === "string" || typeof cursor !== "string") {
      throw new CourierError("bad_response", `${what}: unusable message in the page (${typeof m === "string" ? m : "no cursor"})`);
    }
    messages.push({ ...m, cursor });
  }
  return messages;
}

const idPattern = /^[A-Za-z0-9._:@+=-]{1,128}$/;

function checkConversation(what: string, id: string): void {
  if (typeof id !== "string" || !idPattern.test(id)) {
    throw new CourierError("invalid_argument", `${what}: a conversation id is 1 to 128 of [A-Za-z0-9._:@+=-]`);
  }
}

function checkUsers(what: string, users: string[]): void {
  if (!Array.isArray(users) || users.length === 0 || users.length > 100 || !users.every((u) => typeof u === "string" && u !== "")) {
    throw new CourierError("invalid_argument", `${what}: 1 to 100 user ids`);
  }
}

function httpError(a: Answer): HttpError {
  const problem = typeof a.body === "object" && a.body !== null && !Array.isArray(a.body) ? (a.body as Problem) : undefined;
  const code = codeForStatus(a.status, problem);
  const detail = typeof problem?.detail === "string" && problem.detail !== "" ? problem.detail : typeof problem?.message === "string" ? problem.message : "";
  const requestId = typeof problem?.request_id === "string" ? problem.request_id : (a.headers.get("X-Request-ID") ?? undefined);
  const extra: { problem?: Problem; requestId?: string; retryAfterMs?: number } = {};
  if (problem) extra.problem = problem;
  if (requestId) extra.requestId = requestId;
  const ra = parseRetryAfter(a.headers.get("Retry-After"));
  if (ra !== undefined) extra.retryAfterMs = ra;
  return new HttpError(a.status, code, `${a.status} ${code}${detail ? ": " + detail : ""}`, extra);
}

/** Retry-After in ms: delta-seconds or an HTTP date. */
export function parseRetryAfter(v: string | null, now = Date.now()): number | undefined {
  if (v === null || v.trim() === "") return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortedError(signal.reason);
}

function abortedError(reason: unknown): CourierError {
  if (reason instanceof CourierError) return reason;
  return new CourierError("aborted", "aborted by the caller", { cause: reason });
}

/** 128 random bits: a UUID where the platform makes them, hex otherwise. */
export function newIdempotencyKey(): string {
  const c = globalThis.crypto;
  if (typeof c?.randomUUID === "function") return c.randomUUID();
  const b = new Uint8Array(16);
  c.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}
