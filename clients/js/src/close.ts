// What each close of the WebSocket means and what the client does about it.

/** What the client does after a close. */
export type CloseAction =
  /** reconnect at once (a draining pod: any other pod takes the session) */
  | "reconnect_now"
  /** reconnect after the backoff delay */
  | "reconnect"
  /** fetch a new token, then reconnect at once */
  | "refresh_token"
  /** stop: retrying would fail the same way; reported as an error */
  | "stop";

export interface CloseVerdict {
  meaning: string;
  action: CloseAction;
  /** The error code reported for "stop". */
  errorCode?: string;
}

/** The close code the client uses itself when the server stops answering pings. */
export const CLOSE_PING_TIMEOUT = 4000;

/**
 * The edge's close when a resume's cursor is behind what the inbox still
 * keeps (INBOX_RETENTION): the client drops the cursor, reconnects live
 * and emits `reset` so the app reloads its newest pages.
 */
export const CLOSE_CURSOR_EXPIRED = 4410;

/**
 * Classifies a close. `opened` tells whether the session got as far as the
 * server's hello: a browser shows an upgrade the server refused (401 bad
 * token, 429 too many sessions, 503 pod full or draining) only as 1006
 * before any frame. `httpStatus` is that refusal's status when the
 * WebSocket implementation reveals it (Node's ws does; browsers do not).
 */
export function classifyClose(code: number, reason: string, opened: boolean, httpStatus?: number): CloseVerdict {
  switch (code) {
    case 1000:
      return { meaning: "closed normally by the server", action: "reconnect" };
    case 1001:
      return { meaning: "the pod is going away (draining): resuming on another pod", action: "reconnect_now" };
    case 1006:
    case 1005:
      if (opened) return { meaning: "connection lost", action: "reconnect" };
      if (httpStatus === 401) return { meaning: "the server refused the token (401)", action: "refresh_token" };
      if (httpStatus === 429) return { meaning: "too many sessions for this user (429)", action: "reconnect" };
      if (httpStatus === 503) return { meaning: "the pod is full or draining (503)", action: "reconnect" };
      if (httpStatus !== undefined) return { meaning: `the server refused the connection (${httpStatus})`, action: "reconnect" };
      return {
        meaning: "could not connect (network, or the server refused: bad token, too many sessions, pod full or draining)",
        action: "reconnect",
      };
    case 1008:
      switch (reason) {
        case "client not reading":
          return { meaning: "the client stopped reading (a write to it made no progress): resuming from the cursor", action: "reconnect" };
        case "send queue overflow": // servers before the catch-up path closed a slow client this way
          return { meaning: "the client read too slowly (send queue overflow): resuming from the cursor", action: "reconnect" };
        case "token expired":
          return { meaning: "the token expired", action: "refresh_token" };
        case "invalid token": // first-frame auth: the server refused the token
          return { meaning: "the server refused the token", action: "refresh_token" };
        case "auth timeout": // first-frame auth: the auth frame came too late (a slow network)
          return { meaning: "the auth frame did not reach the server in time", action: "reconnect" };
        case "too many bad frames":
          return { meaning: "the server refused this client's frames (too many bad frames)", action: "stop", errorCode: "policy_violation" };
        default:
          return { meaning: `policy violation${reason ? ": " + reason : ""}`, action: "stop", errorCode: "policy_violation" };
      }
    case 1009:
      return { meaning: "a frame this client sent was too large", action: "stop", errorCode: "frame_too_large" };
    case 1011:
      return { meaning: `the server failed${reason ? " (" + reason + ")" : ""}: retrying`, action: "reconnect" };
    case 1012:
      return { meaning: "the server is restarting", action: "reconnect" };
    case 1013:
      return { meaning: "the server asks to try again later", action: "reconnect" };
    case CLOSE_CURSOR_EXPIRED:
      return { meaning: "the cursor is behind what the server keeps (cursor_expired): starting again from the newest messages", action: "reconnect_now" };
    case CLOSE_PING_TIMEOUT:
      return { meaning: "the server stopped answering pings: connection presumed lost", action: "reconnect" };
    default:
      return { meaning: `closed with code ${code}${reason ? " (" + reason + ")" : ""}`, action: "reconnect" };
  }
}
