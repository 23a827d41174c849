/** Public surface of the Tickwire browser client. */

export { TickwireClient, type ClientEvents, type ClientStats, type ConnectionRecord, type TickwireOptions } from "./client.ts";
export { DEFAULT_BACKOFF, backoffCeiling, fullJitterDelay, type BackoffPolicy } from "./backoff.ts";
export type { ConnectionState } from "./state.ts";
export type { Environment, EventSourceConstructor, FetchLike, Timers, WebSocketConstructor } from "./environment.ts";
export type { GapFrame, MsgFrame, ErrorFrame } from "./protocol.ts";
export type { Percentiles } from "./metrics.ts";
export { httpUrlFor } from "./link.ts";
export { topicMatches } from "./topics.ts";
