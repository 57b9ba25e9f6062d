// "… is typing": a signal of kind "typing" sent at most once per throttle
// interval while the user types, and a receiver-side expiry, so a sender
// that stops (closes the tab, loses the network) without saying so stops
// showing as typing on its own. Signals are at most once: the expiry is
// what makes a lost "stopped" harmless.

import type { Clock } from "./clock.js";

/** The signal kind the client uses for typing. */
export const TYPING_KIND = "typing";
/** A typing signal is sent at most this often per conversation while the user types. */
export const TYPING_THROTTLE_MS = 2_500;
/** A receiver shows a user as typing for this long after the last typing signal. */
export const TYPING_EXPIRE_MS = 6_000;

/** The `typing` event: someone started or stopped typing in a conversation. */
export interface TypingEvent {
  conversation: string;
  user: string;
  active: boolean;
}

/**
 * The sender's side: typing(conversation) on every keystroke sends one
 * signal per throttle interval; stop(conversation) sends "stopped" when a
 * "typing" went out recently (a receiver still shows it), else nothing.
 */
export class TypingSender {
  private readonly last = new Map<string, number>(); // conversation → when the last "typing" went out

  constructor(
    private readonly clock: Clock,
    private readonly throttleMs: number,
    private readonly expireMs: number,
    private readonly send: (conversation: string, active: boolean) => void,
  ) {}

  /** Returns whether a signal was sent. */
  typing(conversation: string): boolean {
    const now = this.clock.now();
    const t = this.last.get(conversation);
    if (t !== undefined && now - t < this.throttleMs) return false;
    if (this.last.size >= 64) this.prune(now);
    this.last.set(conversation, now);
    this.send(conversation, true);
    return true;
  }

  /** Returns whether a signal was sent. */
  stop(conversation: string): boolean {
    const t = this.last.get(conversation);
    this.last.delete(conversation);
    if (t === undefined || this.clock.now() - t >= this.expireMs) return false;
    this.send(conversation, false);
    return true;
  }

  private prune(now: number): void {
    for (const [c, t] of this.last) if (now - t >= this.expireMs) this.last.delete(c);
  }
}

/**
 * The receiver's side: who is typing where. A "typing" signal starts (or
 * extends) a user's typing for expireMs; "stopped", a message from that
 * user in that conversation, or the expiry end it. Each change is emitted
 * once.
 */
export class TypingTracker {
  private readonly timers = new Map<string, { conversation: string; user: string; timer: unknown }>();

  constructor(
    private readonly clock: Clock,
    private readonly expireMs: number,
    private readonly emit: (ev: TypingEvent) => void,
  ) {}

  signal(conversation: string, user: string, active: boolean): void {
    if (!active) {
      this.end(conversation, user);
      return;
    }
    const key = conversation + "\n" + user;
    const cur = this.timers.get(key);
    if (cur) this.clock.clearTimeout(cur.timer);
    const timer = this.clock.setTimeout(() => this.end(conversation, user), this.expireMs);
    this.timers.set(key, { conversation, user, timer });
    if (!cur) this.emit({ conversation, user, active: true });
  }

  /** A message from user in conversation: they have stopped typing it. */
  message(conversation: string, user: string): void {
    this.end(conversation, user);
  }

  /** Whether user shows as typing in conversation. */
  isTyping(conversation: string, user: string): boolean {
    return this.timers.has(conversation + "\n" + user);
  }

  /** Ends everyone's typing (the session is gone: no "stopped" can arrive). */
  clear(): void {
    for (const { conversation, user } of [...this.timers.values()]) this.end(conversation, user);
  }

  private end(conversation: string, user: string): void {
    const key = conversation + "\n" + user;
    const cur = this.timers.get(key);
    if (!cur) return;
    this.clock.clearTimeout(cur.timer);
    this.timers.delete(key);
    this.emit({ conversation, user, active: false });
  }
}
