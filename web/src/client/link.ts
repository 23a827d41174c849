/**
 * One connection attempt over one transport, behind a common shape: the client sees parsed
 * frames in and a single `closed` out, whether it talks WebSocket or Server-Sent Events.
 * A link reports at most one `closed`, and nothing at all after the client closed it itself.
 */

import type { EventSourceConstructor, WebSocketConstructor } from "./environment.ts";
import { CloseCode, parseServerFrame, parseSseData, type ClientFrame, type ServerFrame } from "./protocol.ts";

export type Transport = "ws" | "sse";

export interface LinkEvents {
  opened(): void;
  frame(frame: ServerFrame): void;
  /** `wasOpen`: whether the link had opened, i.e. a refused connection has it false. */
  closed(code: number, wasOpen: boolean): void;
}

export interface Link {
  readonly transport: Transport;
  readonly url: string;
  /** False when the transport cannot carry client frames (SSE) or the link is not open. */
  send(frame: ClientFrame): boolean;
  /** Closes without reporting `closed`: the caller already knows. */
  close(code?: number, reason?: string): void;
}

export function openWebSocketLink(
  Ctor: WebSocketConstructor,
  url: string,
  protocols: string[],
  events: LinkEvents,
): Link {
  const socket = protocols.length ? new Ctor(url, protocols) : new Ctor(url);
  let open = false;
  let done = false;
  const finish = (code: number) => {
    if (done) return;
    done = true;
    events.closed(code, open);
  };
  socket.onopen = () => {
    if (done) return;
    open = true;
    events.opened();
  };
  socket.onmessage = (event) => {
    if (done || typeof event.data !== "string") return;
    const frame = parseServerFrame(event.data);
    if (frame) events.frame(frame);
  };
  socket.onclose = (event) => finish(event.code);
  // Browsers follow an error with a close event, but fakes and odd platforms may not.
  socket.onerror = () => finish(CloseCode.ABNORMAL);
  return {
    transport: "ws",
    url,
    send(frame) {
      if (!open || done) return false;
      socket.send(JSON.stringify(frame));
      return true;
    },
    close(code = CloseCode.NORMAL, reason = "") {
      done = true;
      socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
      socket.close(code, reason);
    },
  };
}

/** Server frame types the gateway may send as named SSE events besides plain `message`s. */
const SSE_EVENT_TYPES = ["msg", "batch", "gap", "welcome", "subscribed"];

export function openEventSourceLink(Ctor: EventSourceConstructor, url: string, events: LinkEvents): Link {
  const source = new Ctor(url);
  let open = false;
  let done = false;
  const onEvent = (event: { data: unknown; lastEventId?: string }) => {
    if (done || typeof event.data !== "string") return;
    const frame = parseSseData(event.data, event.lastEventId);
    if (frame) events.frame(frame);
  };
  source.onopen = () => {
    if (done) return;
    open = true;
    events.opened();
  };
  source.onmessage = onEvent;
  for (const type of SSE_EVENT_TYPES) source.addEventListener(type, onEvent);
  // EventSource would reconnect on its own with one Last-Event-ID for every topic; the
  // client's own backoff, failover and per-subscription positions do better, so stop it.
  source.onerror = () => {
    if (done) return;
    done = true;
    source.close();
    events.closed(CloseCode.ABNORMAL, open);
  };
  return {
    transport: "sse",
    url,
    send: () => false,
    close() {
      done = true;
      source.close();
    },
  };
}

/** The HTTP endpoint `path` beside a gateway's WebSocket or SSE URL: ws://h:p/ws → http://h:p/<path>. */
export function httpUrlFor(linkUrl: string, path: string): string {
  const url = new URL(linkUrl);
  url.protocol = url.protocol === "wss:" || url.protocol === "https:" ? "https:" : "http:";
  url.pathname = url.pathname.replace(/(ws|sse)\/?$/, path);
  url.search = "";
  return url.toString();
}

/** The SSE endpoint beside a WebSocket URL: ws://h:p/ws → http://h:p/sse?topics=…&since=…&epoch=….
 * A resume names the stream lifetime its `since` belongs to, as a WebSocket `subscribe` does:
 * without it a gateway on a recreated stream could not tell an old seq from a new one. */
export function sseUrlFor(wsUrl: string, topics: readonly string[], since: number | undefined,
                          epoch: string | null): string {
  const url = new URL(httpUrlFor(wsUrl, "sse"));
  url.searchParams.set("topics", topics.join(","));
  if (since !== undefined) {
    url.searchParams.set("since", String(since));
    if (epoch !== null) url.searchParams.set("epoch", epoch);
  }
  return url.toString();
}
