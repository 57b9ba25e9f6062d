// The WebSocket protocol of ws-edge, server side: frame types and their
// parsing. With batch=1 one WebSocket message may hold several frames, one
// compact JSON object per line.

/** A message as the servers render it (WebSocket frames and REST). */
export interface Message {
  id: string;
  from: string;
  /**
   * The recipients, for messages to at most 16 of them; `[]` for larger
   * sends (then `to_count` tells how many).
   */
  to: string[];
  /** The number of recipients (from `to` on servers that do not send it). */
  to_count: number;
  /** The sender's JSON value. */
  payload: unknown;
  content_type: string;
  /** RFC 3339: when the gateway accepted it. */
  sent_at: string;
  /** RFC 3339: when it was stored, when the server says. */
  stored_at?: string;
  /**
   * The conversation it belongs to: the one the sender named, or the one
   * derived from its members (see conversationId()). Absent from servers
   * that predate conversations.
   */
  conversation_id?: string;
  /** Set on the sender's own copy (in the sender's inbox, on the sender's other sessions). */
  outgoing?: boolean;
}

/** A message of the caller's inbox, with the cursor that resumes after it. */
export interface InboxMessage extends Message {
  cursor: string;
}

export interface HelloFrame {
  type: "hello";
  session_id: string;
  pod: string;
  user: string;
  resumed: boolean;
}

export interface SyncedFrame {
  type: "synced";
  cursor: string;
}

export interface MessageFrame {
  type: "message";
  message: Message;
  cursor: string;
}

export interface ErrorFrame {
  type: "error";
  code: string;
  message: string;
}

/**
 * Someone delivered or read every message of a conversation up to and
 * including message_id. Sent to the sender's sessions. For a send to more
 * than 16 users it names no user: `count` says how many have.
 */
export interface ReceiptFrame {
  type: "receipt";
  kind: "delivered" | "read";
  conversation: string;
  message_id: string;
  user?: string;
  count?: number;
}

/** One of the caller's sessions marked a conversation read up to cursor. */
export interface ReadFrame {
  type: "read";
  conversation: string;
  cursor: string;
}

/** A watched user came online or went offline. */
export interface PresenceFrame {
  type: "presence";
  user: string;
  online: boolean;
  /** RFC 3339, or null when never seen. */
  last_seen: string | null;
}

/** An ephemeral signal from another user (never stored, at most once). */
export interface SignalFrame {
  type: "signal";
  from: string;
  conversation?: string;
  kind: string;
  data?: unknown;
  sent_at: string;
}

export interface PongFrame {
  type: "pong";
}

/** A frame of a type this client does not know (a newer server): ignored. */
export interface OtherFrame {
  type: string;
}

export type ServerFrame =
  | HelloFrame
  | SyncedFrame
  | MessageFrame
  | ErrorFrame
  | ReceiptFrame
  | ReadFrame
  | PresenceFrame
  | SignalFrame
  | PongFrame
  | OtherFrame;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const isString = (v: unknown): v is string => typeof v === "string";

/**
 * Checks and normalizes a message from the server; returns why it is
 * unusable otherwise.
 */
export function parseMessage(raw: unknown): Message | string {
  if (!isObject(raw)) return "message is not an object";
  if (!isString(raw.id) || raw.id === "") return "message without an id";
  if (!isString(raw.from)) return `message ${raw.id} without a sender`;
  const to = Array.isArray(raw.to) ? raw.to.filter(isString) : [];
  const count = typeof raw.to_count === "number" && Number.isInteger(raw.to_count) && raw.to_count >= 0 ? raw.to_count : to.length;
  const m: Message = {
    id: raw.id,
    from: raw.from,
    to,
    to_count: count,
    payload: raw.payload,
    content_type: isString(raw.content_type) ? raw.content_type : "application/json",
    sent_at: isString(raw.sent_at) ? raw.sent_at : "",
  };
  if (isString(raw.stored_at)) m.stored_at = raw.stored_at;
  if (isString(raw.conversation_id) && raw.conversation_id !== "") m.conversation_id = raw.conversation_id;
  if (raw.outgoing === true) m.outgoing = true;
  return m;
}

/** Parses one frame; returns why it is unusable otherwise. */
export function parseFrame(text: string): ServerFrame | string {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return "not JSON";
  }
  if (!isObject(v) || !isString(v.type)) return "not a frame object with a type";
  switch (v.type) {
    case "hello":
      if (!isString(v.session_id)) return "hello without a session_id";
      return {
        type: "hello",
        session_id: v.session_id,
        pod: isString(v.pod) ? v.pod : "",
        user: isString(v.user) ? v.user : "",
        resumed: v.resumed === true,
      };
    case "synced":
      if (!isString(v.cursor)) return "synced without a cursor";
      return { type: "synced", cursor: v.cursor };
    case "message": {
      if (!isString(v.cursor) || v.cursor === "") return "message frame without a cursor";
      const m = parseMessage(v.message);
      if (typeof m === "string") return m;
      return { type: "message", message: m, cursor: v.cursor };
    }
    case "error":
      return { type: "error", code: isString(v.code) ? v.code : "unknown", message: isString(v.message) ? v.message : "" };
    case "receipt": {
      if (v.kind !== "delivered" && v.kind !== "read") return "receipt with an unknown kind";
      if (!isString(v.conversation) || !isString(v.message_id) || v.message_id === "") return "receipt without a conversation or message_id";
      const r: ReceiptFrame = { type: "receipt", kind: v.kind, conversation: v.conversation, message_id: v.message_id };
      if (isString(v.user)) r.user = v.user;
      if (typeof v.count === "number" && Number.isInteger(v.count) && v.count >= 0) r.count = v.count;
      return r;
    }
    case "read":
      if (!isString(v.conversation) || !isString(v.cursor)) return "read without a conversation or cursor";
      return { type: "read", conversation: v.conversation, cursor: v.cursor };
    case "presence":
      if (!isString(v.user) || typeof v.online !== "boolean") return "presence without a user or online";
      return { type: "presence", user: v.user, online: v.online, last_seen: isString(v.last_seen) ? v.last_seen : null };
    case "signal": {
      if (!isString(v.from) || !isString(v.kind)) return "signal without a sender or kind";
      const sig: SignalFrame = { type: "signal", from: v.from, kind: v.kind, sent_at: isString(v.sent_at) ? v.sent_at : "" };
      if (isString(v.conversation) && v.conversation !== "") sig.conversation = v.conversation;
      if ("data" in v) sig.data = v.data;
      return sig;
    }
    default:
      return { type: v.type };
  }
}

/**
 * Splits one WebSocket text message into its frames (one per line; a
 * server without batching sends one frame per message, which splits the
 * same way). Unusable parts are returned as errors, in place, so the
 * caller can report them and go on with the rest.
 */
export function splitFrames(data: string): Array<ServerFrame | { error: string; text: string }> {
  const out: Array<ServerFrame | { error: string; text: string }> = [];
  for (const line of data.split("\n")) {
    const text = line.trim();
    if (text === "") continue;
    const f = parseFrame(text);
    out.push(typeof f === "string" ? { error: f, text: text.slice(0, 200) } : f);
  }
  return out;
}
