/**
 * Courier's JavaScript/TypeScript client (browsers and Node 20+).
 * @packageDocumentation
 */
export { Courier } from "./client.js";
export type {
  CourierOptions,
  CourierEvents,
  ConnectionState,
  StateChange,
  CloseInfo,
  SessionInfo,
  MessageMeta,
  SyncedInfo,
  WebSocketLike,
  WebSocketConstructor,
} from "./client.js";
export { CourierError, HttpError, ServerError, ConnectionError } from "./errors.js";
export type { ErrorCode, Problem } from "./errors.js";
export type { Message, InboxMessage } from "./frames.js";
export type { SendOptions, SendResult, SyncOptions, SyncPage, MessageView, RetryOptions } from "./rest.js";
export { memoryStorage } from "./storage.js";
export type { CursorStorage } from "./storage.js";
export { decodeToken } from "./token.js";
export type { TokenSource, TokenClaims } from "./token.js";
export { backoffDelay } from "./backoff.js";
export type { BackoffOptions } from "./backoff.js";
export { classifyClose, CLOSE_PING_TIMEOUT } from "./close.js";
export type { CloseAction, CloseVerdict } from "./close.js";
export type { Clock } from "./clock.js";
