/**
 * Does a gateway answer HTTP? Asked after a WebSocket handshake failed, to tell the two
 * reasons apart: a gateway that is down (refused, reset, timed out) is left for the next one
 * in the list, over WebSocket again; a gateway that answers HTTP while its WebSocket fails
 * sits behind something that breaks WebSocket (a proxy dropping `Upgrade`), which is what
 * the SSE fallback is for.
 */

import type { FetchLike, Timers } from "./environment.ts";
import { httpUrlFor } from "./link.ts";

export type Liveness = "answers" | "down";

/**
 * GET `/healthz` beside the WebSocket URL. A 5xx counts as down: that is what a proxy in
 * front answers when the gateway behind it is gone. Any other status (even a 404 from an
 * ingress that does not route `/healthz`) shows that HTTP gets through. A cross-origin
 * gateway that does not list the page's origin fails CORS here, as its WebSocket would have
 * failed the Origin check: down for this page, either way.
 */
export async function probeLiveness(fetch: FetchLike, wsUrl: string, timers: Timers, timeoutMs: number): Promise<Liveness> {
  const abort = typeof AbortController === "function" ? new AbortController() : null;
  let timer: unknown = null;
  const timeout = new Promise<Liveness>((resolve) => {
    timer = timers.setTimeout(() => {
      abort?.abort();
      resolve("down");
    }, timeoutMs);
  });
  const answer = fetch(httpUrlFor(wsUrl, "healthz"), { cache: "no-store", ...(abort ? { signal: abort.signal } : {}) }).then(
    (response): Liveness => (response.status >= 500 ? "down" : "answers"),
    (): Liveness => "down",
  );
  try {
    return await Promise.race([answer, timeout]);
  } finally {
    timers.clearTimeout(timer);
  }
}
