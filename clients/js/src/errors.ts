// Errors are typed objects carrying a stable machine `code`: the server's
// problem code for REST answers, the server's code for WebSocket error
// frames, or one of the library's own codes (see ErrorCode).

/**
 * Codes the library itself gives (the server's codes, such as
 * `invalid_request` or `rate_limited`, come through unchanged).
 */
export type ErrorCode =
  | "network_error" // fetch failed (no answer) after every retry
  | "timeout" // one attempt took longer than its timeout, after every retry
  | "aborted" // the caller's AbortSignal fired
  | "bad_response" // the server's answer could not be understood
  | "bad_frame" // a WebSocket frame from the server could not be understood
  | "token_unavailable" // the token function threw or returned no token
  | "token_expired" // the token expired and cannot be refreshed (a fixed string)
  | "policy_violation" // the server closed the session with 1008 for a reason not retried
  | "frame_too_large" // the server closed the session with 1009
  | "storage_error" // the cursor storage failed
  | "listener_error" // an event listener threw
  | "invalid_argument" // a method was called with bad arguments
  | "not_configured"; // the option a method needs (edgeUrl, gatewayUrl, WebSocket) is missing

/** The base of every error the library reports or throws. */
export class CourierError extends Error {
  /** Stable machine code: the server's or one of ErrorCode. */
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "CourierError";
    this.code = code;
  }
}

/** An `application/problem+json` body (RFC 9457) as the gateway sends it. */
export interface Problem {
  type?: string;
  title?: string;
  status?: number;
  code?: string;
  detail?: string;
  request_id?: string;
  [member: string]: unknown;
}

/** A REST answer with an error status. */
export class HttpError extends CourierError {
  /** HTTP status. */
  readonly status: number;
  /** The problem body, when the server sent one. */
  readonly problem: Problem | undefined;
  /** The server's request id (problem body or X-Request-ID), for support. */
  readonly requestId: string | undefined;
  /** How long the server asked to wait (Retry-After), when it did. */
  readonly retryAfterMs: number | undefined;

  constructor(status: number, code: string, message: string, extra: { problem?: Problem; requestId?: string; retryAfterMs?: number } = {}) {
    super(code, message);
    this.name = "HttpError";
    this.status = status;
    this.problem = extra.problem;
    this.requestId = extra.requestId;
    this.retryAfterMs = extra.retryAfterMs;
  }
}

/** An `{"type":"error","code","message"}` frame from the edge. */
export class ServerError extends CourierError {
  constructor(code: string, message: string) {
    super(code, message);
    this.name = "ServerError";
  }
}

/** The session was closed by the server in a way the client does not retry. */
export class ConnectionError extends CourierError {
  /** The WebSocket close code. */
  readonly closeCode: number;
  /** The close reason the server gave. */
  readonly reason: string;

  constructor(code: string, message: string, closeCode: number, reason: string) {
    super(code, message);
    this.name = "ConnectionError";
    this.closeCode = closeCode;
    this.reason = reason;
  }
}

// The codes the gateway gives each status, for answers without a problem
// body (a proxy's HTML error page, say).
const statusCodes: Record<number, string> = {
  400: "invalid_request",
  401: "unauthenticated",
  404: "not_found",
  405: "method_not_allowed",
  413: "payload_too_large",
  415: "unsupported_media_type",
  429: "rate_limited",
  500: "internal",
  502: "unavailable",
  503: "unavailable",
  504: "unavailable",
};

/** The code of an error answer: the problem's, else the status's usual one. */
export function codeForStatus(status: number, problem?: Problem): string {
  if (problem && typeof problem.code === "string" && problem.code !== "") return problem.code;
  return statusCodes[status] ?? `http_${status}`;
}
