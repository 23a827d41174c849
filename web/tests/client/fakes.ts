/** Fake sockets for driving TickwireClient without a network. */

import type { EventSourceLike, WebSocketLike } from "../../src/client/environment";

type Listener = (event: { data: unknown; lastEventId?: string }) => void;

export class FakeWebSocket implements WebSocketLike {
  static instances: FakeWebSocket[] = [];
  static reset(): void {
    FakeWebSocket.instances = [];
  }
  static get last(): FakeWebSocket {
    const socket = FakeWebSocket.instances.at(-1);
    if (!socket) throw new Error("no WebSocket was created");
    return socket;
  }

  onopen: WebSocketLike["onopen"] = null;
  onmessage: WebSocketLike["onmessage"] = null;
  onclose: WebSocketLike["onclose"] = null;
  onerror: WebSocketLike["onerror"] = null;
  readonly sent: Record<string, unknown>[] = [];
  closedByClient: number | null = null;

  constructor(
    readonly url: string,
    readonly protocols?: string | string[],
  ) {
    FakeWebSocket.instances.push(this);
  }

  send(data: string): void {
    this.sent.push(JSON.parse(data) as Record<string, unknown>);
  }

  close(code = 1000): void {
    this.closedByClient = code;
  }

  // ---- what the server side does ----

  open(): void {
    this.onopen?.({});
  }

  /** Opens and sends a welcome. */
  accept(node = "gw-1", heartbeat = 15): void {
    this.open();
    this.receive({ type: "welcome", protocol: 1, session: "s", node, heartbeat });
  }

  receive(frame: object): void {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }

  /** Closes from the server side (or fails to connect, when never opened). */
  drop(code = 1006): void {
    this.onclose?.({ code });
  }

  framesOf(type: string): Record<string, unknown>[] {
    return this.sent.filter((f) => f.type === type);
  }
}

export class FakeEventSource implements EventSourceLike {
  static instances: FakeEventSource[] = [];
  static reset(): void {
    FakeEventSource.instances = [];
  }

  onopen: EventSourceLike["onopen"] = null;
  onmessage: EventSourceLike["onmessage"] = null;
  onerror: EventSourceLike["onerror"] = null;
  closed = false;
  private readonly listeners = new Map<string, Listener[]>();

  constructor(readonly url: string) {
    FakeEventSource.instances.push(this);
  }

  addEventListener(type: string, listener: Listener): void {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), listener]);
  }

  close(): void {
    this.closed = true;
  }

  open(): void {
    this.onopen?.({});
  }

  emit(data: object, id?: string, type = "message"): void {
    const event = { data: JSON.stringify(data), lastEventId: id ?? "" };
    if (type === "message") this.onmessage?.(event);
    for (const listener of this.listeners.get(type) ?? []) listener(event);
  }

  fail(): void {
    this.onerror?.({});
  }
}

type HttpAnswer = number | "refused" | "hang";

/** `fetch` for the `/healthz` probe: a status per URL, a refused connection, or no answer
 * until `release`. Unknown URLs are refused. */
export class FakeHttp {
  readonly asked: string[] = [];
  private readonly hanging: ((status: number) => void)[] = [];

  constructor(private readonly answers: Record<string, HttpAnswer>) {}

  fetch = (url: string): Promise<{ status: number }> => {
    this.asked.push(url);
    const answer = this.answers[url] ?? "refused";
    if (answer === "refused") return Promise.reject(new TypeError("Failed to fetch"));
    if (answer === "hang") return new Promise((resolve) => this.hanging.push((status) => resolve({ status })));
    return Promise.resolve({ status: answer });
  };

  release(status: number): void {
    for (const resolve of this.hanging.splice(0)) resolve(status);
  }
}

/** Lets pending promise callbacks (the probe's answer) run, without moving the fake clock. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

/** A repeating sequence of "random" numbers. */
export function sequence(...values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length] ?? 0;
}

export function msg(topic: string, seq: number, extra: object = {}): object {
  return { type: "msg", topic, seq, id: `${seq}-0`, ts: Date.now() * 1000, data: { symbol: topic.split(".")[1] }, ...extra };
}
