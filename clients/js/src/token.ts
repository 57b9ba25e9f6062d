import type { Clock } from "./clock.js";
import { CourierError } from "./errors.js";

/**
 * Where tokens come from: a fixed string, or a function returning a fresh
 * one (called again when the token is about to expire, when the server
 * closed the session because it expired, and after repeated refused
 * connects).
 */
export type TokenSource = string | (() => string | Promise<string>);

/** The claims the client reads from a JWT (without verifying it). */
export interface TokenClaims {
  sub?: string;
  /** Expiry, seconds since the epoch. */
  exp?: number;
}

/**
 * Reads a JWT's payload without verifying the signature: the client only
 * uses it to know who it is and when to fetch the next token; the servers
 * verify. Anything that is not a JWT gives null.
 */
export function decodeToken(token: string): TokenClaims | null {
  const parts = token.split(".");
  if (parts.length !== 3 || parts[1] === undefined) return null;
  try {
    const b64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const bin = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
    const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    const claims: unknown = JSON.parse(new TextDecoder().decode(bytes));
    if (typeof claims !== "object" || claims === null || Array.isArray(claims)) return null;
    const c = claims as Record<string, unknown>;
    const out: TokenClaims = {};
    if (typeof c.sub === "string") out.sub = c.sub;
    if (typeof c.exp === "number" && Number.isFinite(c.exp)) out.exp = c.exp;
    return out;
  } catch {
    return null;
  }
}

/** Holds the current token and fetches the next one when asked or due. */
export class TokenManager {
  private token: string | undefined;
  private claims: TokenClaims | null = null;
  private pending: Promise<string> | undefined;

  constructor(
    private readonly source: TokenSource,
    private readonly clock: Clock,
    /** Fetch a new token when the current one has less than this left. */
    private readonly marginMs: number,
  ) {
    if (typeof source === "string") this.set(source);
  }

  /** Whether a new token can be had (the source is a function). */
  get refreshable(): boolean {
    return typeof this.source === "function";
  }

  /** The token's subject (user id), when it is a JWT that names one. */
  get subject(): string | undefined {
    return this.claims?.sub;
  }

  /** The token's expiry in ms since the epoch, when known. */
  get expiresAt(): number | undefined {
    return this.claims?.exp === undefined ? undefined : this.claims.exp * 1000;
  }

  /** Whether the current token is known to have expired. */
  expired(): boolean {
    const exp = this.expiresAt;
    return exp !== undefined && exp <= this.clock.now();
  }

  /**
   * Returns a token: the current one unless `force` is set, there is none,
   * or it expires within the margin (only a function source can give
   * another). Concurrent calls share one fetch.
   */
  async get(force = false): Promise<string> {
    const exp = this.expiresAt;
    const due = exp !== undefined && exp - this.clock.now() < this.marginMs;
    if (this.token !== undefined && (!this.refreshable || (!force && !due))) return this.token;
    if (this.pending) return this.pending;
    this.pending = this.fetch().finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }

  private async fetch(): Promise<string> {
    let tok: unknown;
    try {
      tok = await (this.source as () => string | Promise<string>)();
    } catch (err) {
      throw new CourierError("token_unavailable", `the token function failed: ${errorText(err)}`, { cause: err });
    }
    if (typeof tok !== "string" || tok === "") {
      throw new CourierError("token_unavailable", "the token function returned no token");
    }
    this.set(tok);
    return tok;
  }

  private set(tok: string): void {
    this.token = tok;
    this.claims = decodeToken(tok);
  }
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
