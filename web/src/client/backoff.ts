/**
 * Reconnect delays: exponential backoff with full jitter (AWS architecture blog,
 * "Exponential Backoff and Jitter"): the delay is uniform in [0, min(cap, base·2^attempt)),
 * so a crowd of clients dropped at once spreads out instead of reconnecting in step.
 */

export interface BackoffPolicy {
  baseMs: number;
  /** Kept below 5 s so a client is back within the promised reconnect time. */
  capMs: number;
  /** Reconnect attempts after a loss before the client gives up in state `failed`. */
  maxAttempts: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 250, capMs: 4000, maxAttempts: 20 };

/** The upper bound of the delay before attempt number `attempt` (0-based). */
export function backoffCeiling(policy: BackoffPolicy, attempt: number): number {
  // 2^attempt overflows to Infinity long after it passes any sane cap; min() handles that.
  return Math.min(policy.capMs, policy.baseMs * 2 ** attempt);
}

export function fullJitterDelay(policy: BackoffPolicy, attempt: number, random: () => number): number {
  return Math.floor(random() * backoffCeiling(policy, attempt));
}
