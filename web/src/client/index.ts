/** Public surface of the Tickwire browser client. */

export { TickwireClient, type ClientEvents, type ClientStats, type ConnectionRecord, type TickwireOptions } from "./client";
export { DEFAULT_BACKOFF, backoffCeiling, fullJitterDelay, type BackoffPolicy } from "./backoff";
export type { ConnectionState } from "./state";
export type { Environment, EventSourceConstructor, FetchLike, Timers, WebSocketConstructor } from "./environment";
export type { GapFrame, MsgFrame, ErrorFrame } from "./protocol";
export type { Percentiles } from "./metrics";
export { httpUrlFor } from "./link";
export { topicMatches } from "./topics";
