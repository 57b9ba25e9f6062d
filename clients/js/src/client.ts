// The Courier client: one WebSocket session at a time to the edge, resumed
// from the last cursor after every reconnect, plus the gateway's REST API.

import { backoffDelay, type BackoffOptions } from "./backoff.js";
import { CLOSE_CURSOR_EXPIRED, CLOSE_PING_TIMEOUT, classifyClose, type CloseAction } from "./close.js";
import { systemClock, type Clock } from "./clock.js";
import { RecentIds } from "./dedupe.js";
import { Emitter } from "./emitter.js";
import { ConnectionError, CourierError, ServerError } from "./errors.js";
import { conversationId } from "./conversation.js";
import {
  splitFrames,
  type HelloFrame,
  type Message,
  type PresenceFrame,
  type ReadFrame,
  type ReceiptFrame,
  type SignalFrame,
} from "./frames.js";
import {
  RestClient,
  type ConversationsOptions,
  type ConversationsPage,
  type HistoryOptions,
  type HistoryPage,
  type MessageView,
  type Presence,
  type ReadState,
  type RetryOptions,
  type SendOptions,
  type SendResult,
  type SignalOptions,
  type SyncOptions,
  type SyncPage,
} from "./rest.js";
import { memoryStorage, type CursorStorage } from "./storage.js";
import { TokenManager, errorText, type TokenSource } from "./token.js";
import { TYPING_EXPIRE_MS, TYPING_KIND, TYPING_THROTTLE_MS, TypingSender, TypingTracker, type TypingEvent } from "./typing.js";

/** The part of the WebSocket API the client uses (browsers' and Node's `ws` fit). */
export interface WebSocketLike {
  readonly readyState: number;
  // Event parameters are loose so that implementations with richer event
  // types (ws, undici) are assignable.
  onopen: ((ev: any) => void) | null; // eslint-disable-line @typescript-eslint/no-explicit-any
  onmessage: ((ev: any) => void) | null; // eslint-disable-line @typescript-eslint/no-explicit-any
  onclose: ((ev: any) => void) | null; // eslint-disable-line @typescript-eslint/no-explicit-any
  onerror: ((ev: any) => void) | null; // eslint-disable-line @typescript-eslint/no-explicit-any
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** The connection's state. */
export type ConnectionState =
  /** first connect after connect(), until the server's hello */
  | "connecting"
  /** a session is open: messages flow */
  | "open"
  /** the session ended; the next attempt is scheduled or under way */
  | "reconnecting"
  /** not connected and not trying: before connect(), after disconnect(), or after a close that is not retried */
  | "closed";

/** One close of the WebSocket, with what it means and what follows. */
export interface CloseInfo {
  code: number;
  reason: string;
  /** In words, for people. */
  meaning: string;
  /** Whether the session had opened (got the server's hello) before it closed. */
  opened: boolean;
  /** What the client does next. */
  action: CloseAction;
  /** The HTTP status of a refused upgrade, when the WebSocket implementation tells it. */
  httpStatus?: number;
}

export interface StateChange {
  previous: ConnectionState;
  /** For "reconnecting": the delay before the next attempt. */
  delayMs?: number;
  /** The close that caused the change, if one did. */
  close?: CloseInfo;
  /** For "closed" after a close that is not retried: why. */
  error?: CourierError;
}

export interface SessionInfo {
  sessionId: string;
  pod: string;
  user: string;
  /** Whether the server resumed from the cursor the client sent. */
  resumed: boolean;
}

export interface MessageMeta {
  /** The cursor that resumes after this message. */
  cursor: string;
  /** Whether it came in the replay after a resume (missed while away) rather than live. */
  replayed: boolean;
}

export interface SyncedInfo {
  cursor: string;
  /** Messages replayed since the hello (missed while away). */
  replayed: number;
}

/** A delivered/read receipt (the frame without its type). */
export type Receipt = Omit<ReceiptFrame, "type">;
/** One of the caller's sessions moved a read marker (the frame without its type). */
export type ReadMarker = Omit<ReadFrame, "type">;
/** A watched user's presence change (the frame without its type). */
export type PresenceChange = Omit<PresenceFrame, "type">;
/** A signal from another user (the frame without its type). */
export type Signal = Omit<SignalFrame, "type">;

/** Why the client started over from the newest messages. */
export interface ResetInfo {
  reason: "cursor_expired";
}

export interface CourierEvents {
  state: (state: ConnectionState, change: StateChange) => void;
  message: (message: Message, meta: MessageMeta) => void;
  open: (session: SessionInfo) => void;
  synced: (info: SyncedInfo) => void;
  close: (info: CloseInfo) => void;
  error: (err: CourierError) => void;
  /** Someone delivered or read the caller's messages of a conversation up to message_id. */
  receipt: (receipt: Receipt) => void;
  /** A session of the caller (this one included) marked a conversation read. */
  read: (marker: ReadMarker) => void;
  /** A watched user came online or went offline. */
  presence: (change: PresenceChange) => void;
  /** Any signal from another user (typing ones too). */
  signal: (signal: Signal) => void;
  /** Someone started or stopped typing in a conversation (stopped: said so, sent a message, or 6 s without a typing signal). */
  typing: (ev: TypingEvent) => void;
  /**
   * The session's cursor was behind what the server keeps (close 4410):
   * the client started again live from the inbox's head. Emitted once that
   * session is synced: reload the newest pages (conversations(),
   * history()) now, and nothing between them and the live stream is missed.
   */
  reset: (info: ResetInfo) => void;
}

export interface CourierOptions {
  /** ws-edge's base URL (http(s):// or ws(s)://); `/v1/ws` is added. Needed by connect(). */
  edgeUrl?: string;
  /** The gateway's base URL. Needed by send(), sync() and get(). */
  gatewayUrl?: string;
  /** A JWT, or a function returning one (called again when it is due, expired or refused). */
  token: TokenSource;
  /**
   * How the WebSocket presents the token. "frame" (the default) sends it in
   * the session's first frame, `{"type":"auth","token"}`, so it never
   * appears in a URL (access logs keep URLs). "query" puts it in the
   * `token` query parameter: the documented fallback for servers that
   * predate first-frame auth.
   */
  wsAuth?: "frame" | "query";
  /** The WebSocket implementation: the global one when absent (pass `ws` in Node 20). */
  WebSocket?: WebSocketConstructor;
  /** The fetch implementation: the global one when absent. */
  fetch?: (input: string, init: RequestInit) => Promise<Response>;
  /** Where the cursor is kept between sessions (memory when absent; `localStorage` in browsers). */
  storage?: CursorStorage;
  /** The storage key; `courier.cursor.<user>` (the token's `sub`) when absent. */
  storageKey?: string;
  /** Ack each message after the message listeners ran (default true). */
  autoAck?: boolean;
  /** Reconnect schedule: capped, jittered exponential backoff. */
  reconnect?: Partial<BackoffOptions> & {
    /** A session that lasted this long resets the schedule (default 10 s). */
    stableAfterMs?: number;
  };
  /** After this many connects in a row that fail before the hello, fetch a new token (default 3). */
  refreshAfterFailures?: number;
  /** Fetch a new token when the current one has less than this left (default 30 s). */
  tokenRefreshMarginMs?: number;
  /** Send a ping after this long without a frame (default 25 s; 0 disables). */
  pingIntervalMs?: number;
  /** Consider the connection lost when a ping gets no frame back within this (default 10 s). */
  pongTimeoutMs?: number;
  /** How many recent message ids are remembered to drop duplicates (default 1000). */
  dedupeWindow?: number;
  /** REST retries. */
  retry?: Partial<RetryOptions>;
  /** Typing signals: at most one per throttleMs (2.5 s) while typing; receivers expire typing after expireMs (6 s). */
  typing?: { throttleMs?: number; expireMs?: number };
  /** Time and randomness (tests). */
  clock?: Clock;
}

/** Watching other users' presence. */
export interface PresenceApi {
  /**
   * Watches these users (at most 100; replaces the previous set; [] stops):
   * `presence` events follow when they come online or go offline. The set
   * is sent again on every new session.
   */
  watch(users: string[]): void;
  /** The users watched now. */
  readonly watching: readonly string[];
  /** Their presence now, from the gateway (users the caller may not watch read as offline, never seen). */
  get(users: string[], opts?: { signal?: AbortSignal }): Promise<Presence[]>;
}

const MAX_SIGNAL_BYTES = 1024;
const signalKind = /^[a-z0-9._-]{1,32}$/;

const defaultBackoff: BackoffOptions = { initialMs: 500, maxMs: 15_000, factor: 2, jitter: 0.5 };
const defaultRetry: RetryOptions = { maxAttempts: 6, initialMs: 250, maxMs: 5_000, timeoutMs: 10_000, maxRetryAfterMs: 30_000 };
const OPEN = 1;
const MAX_PENDING_ACKS = 1000;

/**
 * A Courier client. connect() keeps a WebSocket session to ws-edge open:
 * it reconnects after losses with capped, jittered backoff (at once after a
 * pod's drain), resumes from the last cursor so nothing is missed, delivers
 * messages in inbox order and each id once, and refreshes the token when
 * it is due or refused. send(), sync() and get() use the gateway's REST
 * API; send() retries with one idempotency key, so a retried message is
 * stored once.
 */
export class Courier {
  private readonly o: CourierOptions;
  private readonly clock: Clock;
  private readonly tokens: TokenManager;
  private readonly rest: RestClient;
  private readonly storage: CursorStorage;
  private readonly events: Emitter<CourierEvents>;
  private readonly seen: RecentIds;
  private readonly backoff: BackoffOptions;
  private readonly stableAfterMs: number;

  private _state: ConnectionState = "closed";
  private _cursor: string | undefined;
  private cursorLoaded = false;
  private storageKeyUsed: string | undefined;
  private _session: SessionInfo | undefined;

  private wanted = false;
  private generation = 0; // bumps on connect()/disconnect(): stale async work checks it
  private ws: WebSocketLike | undefined;
  private opened = false;
  private openedAt = 0;
  private replaying = false;
  private replayed = 0;
  private attempt = 0;
  private failures = 0; // connects in a row that closed before the hello
  private forceToken = false;
  private httpStatus: number | undefined;
  private retryTimer: unknown;
  private pingTimer: unknown;
  private pongTimer: unknown;
  private lastFrameAt = 0;
  private readonly pendingAcks = new Set<string>();
  private resetPending = false; // a 4410 dropped the cursor: say `reset` once the next session is synced
  private watched: string[] = [];
  private readonly typingSender: TypingSender;
  private readonly typingTracker: TypingTracker;

  /** Watching other users' presence. */
  readonly presence: PresenceApi;

  constructor(options: CourierOptions) {
    if (!options || (typeof options.token !== "string" && typeof options.token !== "function")) {
      throw new CourierError("invalid_argument", "Courier: options.token (a JWT or a function returning one) is required");
    }
    this.o = options;
    this.clock = options.clock ?? systemClock;
    this.tokens = new TokenManager(options.token, this.clock, options.tokenRefreshMarginMs ?? 30_000);
    const fetchFn = options.fetch ?? (typeof globalThis.fetch === "function" ? globalThis.fetch.bind(globalThis) : undefined);
    this.rest = new RestClient(options.gatewayUrl, fetchFn, this.tokens, this.clock, { ...defaultRetry, ...options.retry });
    this.storage = options.storage ?? memoryStorage();
    this.seen = new RecentIds(options.dedupeWindow ?? 1000);
    this.backoff = { ...defaultBackoff, ...options.reconnect };
    this.stableAfterMs = options.reconnect?.stableAfterMs ?? 10_000;
    this.events = new Emitter<CourierEvents>((event, err) => {
      if (event === "error") return; // an error listener that throws has nowhere left to report to
      this.report(new CourierError("listener_error", `a "${String(event)}" listener threw: ${errorText(err)}`, { cause: err }));
    });
    const throttleMs = options.typing?.throttleMs ?? TYPING_THROTTLE_MS;
    const expireMs = options.typing?.expireMs ?? TYPING_EXPIRE_MS;
    this.typingSender = new TypingSender(this.clock, throttleMs, expireMs, (conversation, active) => {
      this.signal({ conversation, kind: TYPING_KIND, data: { active } }).catch((err: unknown) =>
        this.report(err instanceof CourierError ? err : new CourierError("network_error", `typing signal: ${errorText(err)}`, { cause: err })),
      );
    });
    this.typingTracker = new TypingTracker(this.clock, expireMs, (ev) => this.events.emit("typing", ev));
    const watching = () => this.watched;
    this.presence = {
      watch: (users) => this.watch(users),
      get watching() {
        return watching();
      },
      get: (users, opts) => this.rest.presence(users, opts),
    };
  }

  /** Adds a listener; returns the function that removes it. */
  on<K extends keyof CourierEvents>(event: K, listener: CourierEvents[K]): () => void {
    return this.events.on(event, listener);
  }

  off<K extends keyof CourierEvents>(event: K, listener: CourierEvents[K]): void {
    this.events.off(event, listener);
  }

  /** The connection's state. */
  get state(): ConnectionState {
    return this._state;
  }

  /** The last cursor (where the next session resumes), if any. */
  get cursor(): string | undefined {
    return this._cursor;
  }

  /** The open session, if any. */
  get session(): SessionInfo | undefined {
    return this._state === "open" ? this._session : undefined;
  }

  /**
   * Starts keeping a session open. `cursor` overrides the stored one (for
   * example the nextCursor of a sync(), so the session starts where the
   * history ends). Without any cursor the first session starts at the
   * inbox's head: older messages come from sync().
   */
  connect(opts: { cursor?: string } = {}): void {
    if (!this.o.edgeUrl) throw new CourierError("not_configured", "connect: edgeUrl is not set");
    const WS = this.o.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!WS) throw new CourierError("not_configured", "connect: no WebSocket implementation: pass options.WebSocket (e.g. the ws package) in Node 20");
    if (opts.cursor !== undefined) {
      this._cursor = opts.cursor;
      this.cursorLoaded = true;
    }
    if (this.wanted) return;
    this.wanted = true;
    this.generation++;
    this.attempt = 0;
    this.failures = 0;
    this.setState("connecting", {});
    void this.open(this.generation);
  }

  /** Closes the session and stops reconnecting. */
  disconnect(): void {
    this.wanted = false;
    this.generation++;
    this.clock.clearTimeout(this.retryTimer);
    this.stopPing();
    const ws = this.ws;
    this.ws = undefined;
    if (ws) {
      detach(ws);
      try {
        ws.close(1000, "client closed");
      } catch {
        // already closed
      }
    }
    this.opened = false;
    this.typingTracker.clear();
    if (this._state !== "closed") this.setState("closed", {});
  }

  /**
   * Marks a message delivered (the sender sees `state: "delivered"`). Sent
   * at once when a session is open, else when the next one opens. With
   * autoAck (the default) the client acks every message itself.
   */
  ack(id: string): void {
    if (typeof id !== "string" || id === "") throw new CourierError("invalid_argument", "ack: a message id is required");
    if (this.ws && this.opened && this.ws.readyState === OPEN) {
      try {
        this.ws.send(JSON.stringify({ type: "ack", id }));
        return;
      } catch {
        // the socket is closing: keep it for the next session
      }
    }
    if (this.pendingAcks.size < MAX_PENDING_ACKS) this.pendingAcks.add(id);
  }

  /** Sends a message through the gateway; retries 503s and network failures with one idempotency key. */
  send(to: string | string[], payload: unknown, opts?: SendOptions): Promise<SendResult> {
    return this.rest.send(to, payload, opts);
  }

  /** One page of the caller's inbox after a cursor, oldest first. */
  sync(opts?: SyncOptions): Promise<SyncPage> {
    return this.rest.sync(opts);
  }

  /** One message the caller sent or received, with its delivery state and delivered/read counts. */
  get(id: string, opts?: { signal?: AbortSignal }): Promise<MessageView> {
    return this.rest.get(id, opts);
  }

  /** The caller's conversations, most recent first, with unread counts. */
  conversations(opts?: ConversationsOptions): Promise<ConversationsPage> {
    return this.rest.conversations(opts);
  }

  /**
   * One page of a conversation, oldest first: the newest page, the page
   * before `before` (scrolling back) or after `after`. A cursor behind what
   * the server keeps gives the newest page with `expired: true`.
   */
  history(conversation: string, opts?: HistoryOptions): Promise<HistoryPage> {
    return this.rest.history(conversation, opts);
  }

  /**
   * Marks a conversation read up to the message at cursor (forward only).
   * Every session of the caller then gets a `read` event; the senders get
   * `read` receipts.
   */
  markRead(conversation: string, cursor: string, opts?: { signal?: AbortSignal }): Promise<ReadState> {
    return this.rest.markRead(conversation, cursor, opts);
  }

  /**
   * The derived id of the conversation between the caller and `peers` (the
   * one the gateway gives a send to them that names no conversation).
   */
  async conversationWith(peers: string | string[]): Promise<string> {
    let me = this._session?.user ?? this.tokens.subject;
    if (!me) {
      await this.tokens.get(false); // a token function not called yet: who am I?
      me = this.tokens.subject;
    }
    if (!me) throw new CourierError("not_configured", "conversationWith: the token names no user (sub); use conversationId(members)");
    return conversationId([me, ...(typeof peers === "string" ? [peers] : peers)]);
  }

  /**
   * Sends an ephemeral signal (never stored, at most once) to users or to a
   * conversation's members: over the session when one is open, else
   * through the gateway (POST /v1/signals). The frame must stay within
   * 1 KiB.
   */
  async signal(opts: SignalOptions): Promise<void> {
    const frame: Record<string, unknown> = { type: "signal" };
    if (opts?.conversation !== undefined) {
      if (typeof opts.conversation !== "string" || opts.conversation === "") throw new CourierError("invalid_argument", "signal: a conversation id is required");
      frame.conversation = opts.conversation;
    } else if (Array.isArray(opts?.to) && opts.to.length > 0 && opts.to.every((u) => typeof u === "string" && u !== "")) {
      frame.to = opts.to;
    } else {
      throw new CourierError("invalid_argument", "signal: give `to` (user ids) or `conversation`");
    }
    if (typeof opts.kind !== "string" || !signalKind.test(opts.kind)) {
      throw new CourierError("invalid_argument", "signal: kind must be 1 to 32 of [a-z0-9._-]");
    }
    frame.kind = opts.kind;
    if (opts.data !== undefined) frame.data = opts.data;
    const text = JSON.stringify(frame);
    if (new TextEncoder().encode(text).length > MAX_SIGNAL_BYTES) {
      throw new CourierError("signal_too_large", `signal: the frame is larger than ${MAX_SIGNAL_BYTES} bytes`);
    }
    if (this.ws && this.opened && this.ws.readyState === OPEN) {
      try {
        this.ws.send(text);
        return;
      } catch {
        // closing: the gateway takes it
      }
    }
    const body: Record<string, unknown> = { kind: frame.kind };
    if (frame.conversation !== undefined) body.conversation_id = frame.conversation;
    else body.to = frame.to;
    if (frame.data !== undefined) body.data = frame.data;
    await this.rest.signal(body);
  }

  /**
   * Call on every keystroke in a conversation's input: sends a `typing`
   * signal at most once per 2.5 s. `typing(id, false)` (on send, on
   * leaving the input) says "stopped" at once, when a typing signal went
   * out recently. Receivers show typing until they hear "stopped", get a
   * message from the typist, or 6 s pass without a typing signal.
   */
  typing(conversation: string, active = true): void {
    if (typeof conversation !== "string" || conversation === "") throw new CourierError("invalid_argument", "typing: a conversation id is required");
    if (active) this.typingSender.typing(conversation);
    else this.typingSender.stop(conversation);
  }

  private watch(users: string[]): void {
    if (!Array.isArray(users) || users.length > 100 || !users.every((u) => typeof u === "string" && u !== "")) {
      throw new CourierError("invalid_argument", "presence.watch: at most 100 user ids");
    }
    this.watched = [...new Set(users)];
    this.sendWatch();
  }

  private sendWatch(): void {
    if (!this.ws || !this.opened || this.ws.readyState !== OPEN) return; // sent with the next hello
    try {
      this.ws.send(JSON.stringify({ type: "watch", users: this.watched }));
    } catch {
      // closing: the next session sends it
    }
  }

  // ---- connection

  private async open(gen: number): Promise<void> {
    let token: string;
    try {
      token = await this.tokens.get(this.forceToken);
      // Cleared only once a token came: a failed fetch is forced again next time.
      this.forceToken = false;
      if (gen !== this.generation) return;
      if (!this.tokens.refreshable && this.tokens.expired()) {
        this.stop(new CourierError("token_expired", "the token has expired and no token function was given to get another"));
        return;
      }
      if (!this.cursorLoaded) {
        this.cursorLoaded = true;
        const stored = await this.storage.getItem(this.storageKey());
        if (gen !== this.generation) return;
        if (typeof stored === "string" && stored !== "") this._cursor = stored;
      }
    } catch (err) {
      if (gen !== this.generation) return;
      const e = err instanceof CourierError ? err : new CourierError("storage_error", `reading the cursor: ${errorText(err)}`, { cause: err });
      this.report(e);
      if (e.code === "storage_error") {
        // Go on without the stored cursor rather than not at all.
        void this.open(gen);
        return;
      }
      this.scheduleRetry(undefined, false);
      return;
    }
    const WS = (this.o.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket)!;
    let ws: WebSocketLike;
    try {
      ws = new WS(this.url(token));
    } catch (err) {
      // A malformed URL: retrying cannot help.
      this.stop(new CourierError("not_configured", `connect: ${errorText(err)}`, { cause: err }));
      return;
    }
    this.ws = ws;
    this.opened = false;
    this.httpStatus = undefined;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.lastFrameAt = this.clock.now();
      if (this.o.wsAuth !== "query") {
        // First frame: the server answers with the hello, or closes with
        // 1008 "invalid token" (refresh) or "auth timeout" (retry).
        try {
          ws.send(JSON.stringify({ type: "auth", token }));
        } catch {
          return; // closing: onclose follows
        }
      }
      this.startPing(ws);
    };
    ws.onmessage = (ev: { data?: unknown }) => {
      if (this.ws !== ws) return;
      this.onData(ws, ev.data);
    };
    ws.onerror = (ev: unknown) => {
      if (this.ws !== ws) return;
      // Node's ws names a refused upgrade's status; browsers tell nothing.
      const text = (ev as { message?: unknown })?.message;
      const m = typeof text === "string" ? /Unexpected server response: (\d{3})/.exec(text) : null;
      if (m) this.httpStatus = Number(m[1]);
    };
    ws.onclose = (ev: { code?: number; reason?: string }) => {
      if (this.ws !== ws) return;
      this.onClose(typeof ev?.code === "number" ? ev.code : 1006, typeof ev?.reason === "string" ? ev.reason : "");
    };
  }

  private url(token: string): string {
    let base = this.o.edgeUrl!.replace(/^http(s?):\/\//i, "ws$1://").replace(/\/+$/, "");
    if (!/\/v1\/ws$/.test(base)) base += "/v1/ws";
    const q = new URLSearchParams();
    if (this.o.wsAuth === "query") q.set("token", token);
    if (this._cursor) q.set("cursor", this._cursor);
    q.set("batch", "1");
    return base + "?" + q.toString();
  }

  private onData(ws: WebSocketLike, data: unknown): void {
    this.lastFrameAt = this.clock.now();
    this.clock.clearTimeout(this.pongTimer);
    this.pongTimer = undefined;
    let text: string;
    if (typeof data === "string") text = data;
    else {
      this.report(new CourierError("bad_frame", "the server sent a binary message; frames are JSON text"));
      return;
    }
    for (const f of splitFrames(text)) {
      if (this.ws !== ws) return; // a listener disconnected
      if ("error" in f && typeof f.error === "string" && "text" in f) {
        this.report(new CourierError("bad_frame", `unusable frame from the server (${f.error}): ${f.text}`));
        continue;
      }
      if (!("type" in f)) continue;
      switch (f.type) {
        case "hello":
          this.onHello(ws, f as HelloFrame);
          break;
        case "synced": {
          const cursor = (f as { cursor: string }).cursor;
          if (cursor !== "") this.saveCursor(cursor);
          const replayed = this.replayed;
          this.replaying = false;
          this.replayed = 0;
          this.events.emit("synced", { cursor, replayed });
          if (this.resetPending && this.ws === ws) {
            this.resetPending = false;
            this.events.emit("reset", { reason: "cursor_expired" });
          }
          break;
        }
        case "message": {
          const { message, cursor } = f as { message: Message; cursor: string };
          if (this.seen.add(message.id)) {
            if (this.replaying) this.replayed++;
            if (message.conversation_id) this.typingTracker.message(message.conversation_id, message.from);
            this.events.emit("message", message, { cursor, replayed: this.replaying });
            // The sender's own copy is not a delivery: acking it would count
            // the sender among the recipients (the server refuses it).
            if (this.o.autoAck !== false && this.ws === ws && !message.outgoing) this.ack(message.id);
          }
          this.saveCursor(cursor);
          break;
        }
        case "receipt": {
          const { type: _t, ...r } = f as ReceiptFrame;
          this.events.emit("receipt", r);
          break;
        }
        case "read": {
          const { type: _t, ...r } = f as ReadFrame;
          this.events.emit("read", r);
          break;
        }
        case "presence": {
          const { type: _t, ...p } = f as PresenceFrame;
          this.events.emit("presence", p);
          break;
        }
        case "signal": {
          const { type: _t, ...sig } = f as SignalFrame;
          this.events.emit("signal", sig);
          const me = this._session?.user ?? this.tokens.subject;
          if (sig.kind === TYPING_KIND && sig.conversation && sig.from !== me) {
            const active = !(typeof sig.data === "object" && sig.data !== null && (sig.data as { active?: unknown }).active === false);
            this.typingTracker.signal(sig.conversation, sig.from, active);
          }
          break;
        }
        case "error": {
          const e = f as { code: string; message: string };
          this.report(new ServerError(e.code, e.message || e.code));
          break;
        }
        default:
          break; // pong, or a frame type from a newer server
      }
    }
  }

  private onHello(ws: WebSocketLike, h: HelloFrame): void {
    this.opened = true;
    this.openedAt = this.clock.now();
    this.failures = 0;
    this.replaying = h.resumed;
    this.replayed = 0;
    this._session = { sessionId: h.session_id, pod: h.pod, user: h.user, resumed: h.resumed };
    this.setState("open", {});
    this.events.emit("open", this._session);
    if (this.ws !== ws) return;
    for (const id of [...this.pendingAcks]) {
      this.pendingAcks.delete(id);
      this.ack(id);
    }
    if (this.watched.length > 0) this.sendWatch();
  }

  private onClose(code: number, reason: string): void {
    const ws = this.ws;
    if (ws) detach(ws);
    this.ws = undefined;
    this.stopPing();
    const opened = this.opened;
    this.opened = false;
    this.replaying = false;
    const v = classifyClose(code, reason, opened, this.httpStatus);
    const info: CloseInfo = { code, reason, meaning: v.meaning, opened, action: v.action };
    if (this.httpStatus !== undefined) info.httpStatus = this.httpStatus;
    this.events.emit("close", info);
    if (code === CLOSE_CURSOR_EXPIRED) {
      // What the cursor points at is gone: resume live from the head; the
      // app reloads the newest pages on `reset`, rather than the session
      // silently skipping what expired.
      this.saveCursor("");
      this.resetPending = true;
    }
    if (!this.wanted) return;
    if (v.action === "stop") {
      this.stop(new ConnectionError(v.errorCode ?? "policy_violation", `${v.meaning} (close ${code})`, code, reason), info);
      return;
    }
    if (v.action === "refresh_token") {
      if (!this.tokens.refreshable) {
        this.stop(new ConnectionError("token_expired", "the token expired or was refused, and no token function was given to get another", code, reason), info);
        return;
      }
      this.forceToken = true;
    }
    if (opened && this.clock.now() - this.openedAt >= this.stableAfterMs) this.attempt = 0;
    if (!opened) {
      this.failures++;
      const limit = this.o.refreshAfterFailures ?? 3;
      if (this.tokens.refreshable && limit > 0 && this.failures >= limit) {
        // A browser cannot tell a refused token from a full pod: after a
        // few failures in a row, a new token rules the first out.
        this.forceToken = true;
        this.failures = 0;
      }
    }
    this.scheduleRetry(info, v.action === "reconnect_now" || (v.action === "refresh_token" && opened));
  }

  private scheduleRetry(close: CloseInfo | undefined, now: boolean): void {
    const delayMs = now ? 0 : backoffDelay(this.attempt++, this.backoff, () => this.clock.random());
    const change: StateChange = { previous: this._state, delayMs };
    if (close) change.close = close;
    this.setState("reconnecting", change);
    const gen = this.generation;
    this.clock.clearTimeout(this.retryTimer);
    this.retryTimer = this.clock.setTimeout(() => {
      if (gen !== this.generation || !this.wanted) return;
      void this.open(gen);
    }, delayMs);
  }

  private stop(err: CourierError, close?: CloseInfo): void {
    this.wanted = false;
    this.generation++;
    this.clock.clearTimeout(this.retryTimer);
    this.report(err);
    const change: StateChange = { previous: this._state, error: err };
    if (close) change.close = close;
    this.setState("closed", change);
  }

  private setState(s: ConnectionState, change: Omit<StateChange, "previous"> & { previous?: ConnectionState }): void {
    const previous = this._state;
    this._state = s;
    this.events.emit("state", s, { ...change, previous });
  }

  private report(err: CourierError): void {
    this.events.emit("error", err);
  }

  // ---- cursor

  private storageKey(): string {
    if (this.storageKeyUsed === undefined) {
      this.storageKeyUsed = this.o.storageKey ?? "courier.cursor." + (this.tokens.subject ?? "default");
    }
    return this.storageKeyUsed;
  }

  private saveCursor(cursor: string): void {
    this._cursor = cursor;
    try {
      const r = this.storage.setItem(this.storageKey(), cursor);
      if (r && typeof (r as Promise<void>).catch === "function") {
        (r as Promise<void>).catch((err: unknown) => this.report(new CourierError("storage_error", `saving the cursor: ${errorText(err)}`, { cause: err })));
      }
    } catch (err) {
      this.report(new CourierError("storage_error", `saving the cursor: ${errorText(err)}`, { cause: err }));
    }
  }

  // ---- liveness: a browser cannot see the server's pings, and a dead
  // network can leave a socket "open" for minutes; an unanswered ping of our
  // own ends it.

  private startPing(ws: WebSocketLike): void {
    const every = this.o.pingIntervalMs ?? 25_000;
    if (every <= 0) return;
    const tick = () => {
      if (this.ws !== ws) return;
      const idle = this.clock.now() - this.lastFrameAt;
      if (idle >= every && this.pongTimer === undefined) {
        try {
          ws.send(JSON.stringify({ type: "ping" }));
        } catch {
          // closing: onclose follows
        }
        this.pongTimer = this.clock.setTimeout(() => {
          if (this.ws !== ws) return;
          // Do not wait for a close handshake a dead network will not carry.
          detach(ws);
          try {
            ws.close(CLOSE_PING_TIMEOUT, "ping timeout");
          } catch {
            // already closing
          }
          this.onClose(CLOSE_PING_TIMEOUT, "ping timeout");
        }, this.o.pongTimeoutMs ?? 10_000);
        this.pingTimer = this.clock.setTimeout(tick, every);
        return;
      }
      this.pingTimer = this.clock.setTimeout(tick, Math.max(every - idle, 1));
    };
    this.pingTimer = this.clock.setTimeout(tick, every);
  }

  private stopPing(): void {
    this.clock.clearTimeout(this.pingTimer);
    this.clock.clearTimeout(this.pongTimer);
    this.pingTimer = undefined;
    this.pongTimer = undefined;
  }
}

function detach(ws: WebSocketLike): void {
  ws.onopen = null;
  ws.onmessage = null;
  ws.onerror = null;
  ws.onclose = null;
}
