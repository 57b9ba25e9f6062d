/** Capped exponential backoff with jitter. */
export interface BackoffOptions {
  /** The first delay's ceiling, in ms. */
  initialMs: number;
  /** The largest delay, in ms. */
  maxMs: number;
  /** Growth per attempt (2 doubles). */
  factor: number;
  /**
   * The randomized share of each delay, 0 to 1: a delay is drawn from
   * [ceiling × (1 − jitter), ceiling]. 0.5 keeps the schedule growing while
   * still spreading the clients of a failed pod apart; 1 is "full jitter".
   */
  jitter: number;
}

/** Delay before reconnect attempt number `attempt` (0 for the first). */
export function backoffDelay(attempt: number, o: BackoffOptions, random: () => number): number {
  const ceiling = Math.min(o.maxMs, o.initialMs * Math.pow(o.factor, Math.max(0, attempt)));
  const jitter = Math.min(1, Math.max(0, o.jitter));
  return Math.round(ceiling * (1 - jitter + jitter * random()));
}
