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

export interface PongFrame {
  type: "pong";
}

/** A frame of a type this client does not know (a newer server): ignored. */
export interface OtherFrame {
  type: string;
}

export type ServerFrame = HelloFrame | SyncedFrame | MessageFrame | ErrorFrame | PongFrame | OtherFrame;

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
