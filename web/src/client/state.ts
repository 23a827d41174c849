/** Connection states and the transitions allowed between them. */

export type ConnectionState =
  /** First connection attempt in progress. */
  | "connecting"
  | "connected"
  /** Connection lost: waiting for the next attempt (see `nextRetryAt`) or making it. */
  | "reconnecting"
  /** Gave up (attempts exhausted, or refused on policy): only `retry()` goes on. */
  | "failed"
  /** Not started, or closed by the application. */
  | "closed";

const ALLOWED: Record<ConnectionState, readonly ConnectionState[]> = {
  closed: ["connecting"],
  connecting: ["connected", "reconnecting", "failed", "closed"],
  connected: ["reconnecting", "failed", "closed"],
  reconnecting: ["connected", "failed", "closed"],
  failed: ["connecting", "closed"],
};

export function canTransition(from: ConnectionState, to: ConnectionState): boolean {
  return from === to || ALLOWED[from].includes(to);
}
