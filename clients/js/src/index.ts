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
  PresenceApi,
  Receipt,
  ReadMarker,
  PresenceChange,
  Signal,
  ResetInfo,
} from "./client.js";
export { conversationId } from "./conversation.js";
export { TYPING_KIND, TYPING_THROTTLE_MS, TYPING_EXPIRE_MS } from "./typing.js";
export type { TypingEvent } from "./typing.js";
export { CourierError, HttpError, ServerError, ConnectionError } from "./errors.js";
export type { ErrorCode, Problem } from "./errors.js";
export type { Message, InboxMessage } from "./frames.js";
export type {
  SendOptions,
  SendResult,
  SyncOptions,
  SyncPage,
  MessageView,
  RetryOptions,
  Conversation,
  ConversationsOptions,
  ConversationsPage,
  HistoryOptions,
  HistoryPage,
  ReadState,
  SignalOptions,
  SignalTarget,
  Presence,
} from "./rest.js";
export { memoryStorage } from "./storage.js";
export type { CursorStorage } from "./storage.js";
export { decodeToken } from "./token.js";
export type { TokenSource, TokenClaims } from "./token.js";
export { backoffDelay } from "./backoff.js";
export type { BackoffOptions } from "./backoff.js";
export { classifyClose, CLOSE_PING_TIMEOUT, CLOSE_CURSOR_EXPIRED } from "./close.js";
export type { CloseAction, CloseVerdict } from "./close.js";
export type { Clock } from "./clock.js";
