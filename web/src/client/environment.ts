/**
 * Everything the client takes from its surroundings, injectable so tests can drive it with
 * fakes: socket constructors, the HTTP probe, timers, randomness and the clock.
 */

export interface WebSocketLike {
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason?: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

export interface EventSourceLike {
  close(): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown; lastEventId?: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  addEventListener(type: string, listener: (event: { data: unknown; lastEventId?: string }) => void): void;
}

export type EventSourceConstructor = new (url: string) => EventSourceLike;

/** The part of `fetch` the client uses to ask whether a gateway answers HTTP at all. */
export type FetchLike = (url: string, init: { cache: "no-store"; signal?: AbortSignal }) => Promise<{ status: number }>;

export type TimerHandle = unknown;

export interface Timers {
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
  setInterval(fn: () => void, ms: number): TimerHandle;
  clearInterval(handle: TimerHandle): void;
}

export interface Environment {
  /** Undefined where the platform has no WebSocket: the client then uses SSE. */
  WebSocket: WebSocketConstructor | undefined;
  EventSource: EventSourceConstructor | undefined;
  /** Undefined where the platform has none: a failed WebSocket then never falls back to SSE. */
  fetch: FetchLike | undefined;
  timers: Timers;
  /** Uniform in [0, 1). */
  random: () => number;
  /** Wall-clock ms since the epoch (compared with the server's origin timestamps). */
  now: () => number;
}

// Looked up at call time, not bound once, so fake timers installed later still take effect.
const globalTimers: Timers = {
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (handle) => globalThis.clearTimeout(handle as ReturnType<typeof setTimeout>),
  setInterval: (fn, ms) => globalThis.setInterval(fn, ms),
  clearInterval: (handle) => globalThis.clearInterval(handle as ReturnType<typeof setInterval>),
};

export function defaultEnvironment(overrides: Partial<Environment> = {}): Environment {
  const g = globalThis as { WebSocket?: WebSocketConstructor; EventSource?: EventSourceConstructor; fetch?: FetchLike };
  return {
    WebSocket: "WebSocket" in overrides ? overrides.WebSocket : g.WebSocket,
    EventSource: "EventSource" in overrides ? overrides.EventSource : g.EventSource,
    // Bound: a detached window.fetch throws "Illegal invocation" when called.
    fetch: "fetch" in overrides ? overrides.fetch : g.fetch?.bind(globalThis),
    timers: overrides.timers ?? globalTimers,
    random: overrides.random ?? Math.random,
    now: overrides.now ?? (() => Date.now()),
  };
}
