/**
 * WebSocket protocol v1 frames (docs/protocol.md, design §2) and a tolerant parser.
 *
 * The server may add fields at any time, so parsing checks only what the client relies on
 * and ignores the rest; a frame that lacks those essentials is dropped rather than thrown on.
 */

export interface MsgFrame {
  type?: "msg";
  topic: string;
  /** JetStream stream sequence: strictly increasing per topic. */
  seq: number;
  /** Redis entry ID. */
  id?: string;
  /** Origin time, µs since the epoch. */
  ts?: number;
  data?: unknown;
  trace?: string;
  hops?: Record<string, number>;
}

export interface WelcomeFrame {
  type: "welcome";
  protocol?: number;
  session?: string;
  node?: string;
  /** Seconds between heartbeats the server expects. */
  heartbeat?: number;
}

export interface SubscribedFrame {
  type: "subscribed";
  topics: string[];
  seq?: number;
  epoch?: string;
  recovered?: boolean;
}

export interface BatchFrame {
  type: "batch";
  msgs: MsgFrame[];
}

export interface GapFrame {
  type: "gap";
  topic?: string;
  reason?: string;
}

export interface PongFrame {
  type: "pong";
  id?: number | string;
  /** Server time, µs since the epoch. */
  ts?: number;
}

export interface ErrorFrame {
  type: "error";
  code?: string;
  message?: string;
}

export type ServerFrame =
  | (MsgFrame & { type: "msg" })
  | WelcomeFrame
  | SubscribedFrame
  | BatchFrame
  | GapFrame
  | PongFrame
  | ErrorFrame;

export type SinceValue = number | Record<string, number>;

export interface SubscribeFrame {
  type: "subscribe";
  topics: string[];
  since?: SinceValue;
  epoch?: string;
}

export interface Receipt {
  seq: number;
  trace: string;
  /** Browser receive time, µs since the epoch, corrected for clock offset. */
  t: number;
}

export interface ReportFrame {
  type: "report";
  received: Receipt[];
  latency: { n: number; p50: number; p99: number };
}

export type ClientFrame =
  | SubscribeFrame
  | { type: "unsubscribe"; topics: string[] }
  | { type: "ping"; id: number; ts: number }
  | ReportFrame
  | { type: "auth"; token: string };

export const CloseCode = {
  NORMAL: 1000,
  ABNORMAL: 1006,
  POLICY: 1008,
  RESTART: 1012,
  SLOW_CONSUMER: 4008,
} as const;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isSeq(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value);
}

/** A msg object (on its own or inside a batch) when it has a topic and a seq. */
export function asMsg(value: unknown): MsgFrame | null {
  if (!isRecord(value) || typeof value.topic !== "string" || !isSeq(value.seq)) return null;
  return value as unknown as MsgFrame;
}

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];
}

/** A JSON object, or null for anything else (including text that is not JSON). */
function parseRecord(text: string): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(text);
    return isRecord(value) ? value : null;
  } catch {
    return null;
  }
}

/** Parse one server frame; null for anything the client cannot use. */
export function parseServerFrame(text: string): ServerFrame | null {
  const value = parseRecord(text);
  return value ? frameFrom(value) : null;
}

function frameFrom(value: Record<string, unknown>): ServerFrame | null {
  switch (value.type) {
    case "msg": {
      const msg = asMsg(value);
      return msg ? { ...msg, type: "msg" } : null;
    }
    case "batch": {
      const msgs = Array.isArray(value.msgs) ? value.msgs.map(asMsg) : [];
      return { type: "batch", msgs: msgs.filter((m): m is MsgFrame => m !== null) };
    }
    case "subscribed":
      return { ...(value as unknown as SubscribedFrame), topics: strings(value.topics) };
    case "welcome":
    case "gap":
    case "pong":
    case "error":
      return value as unknown as ServerFrame;
    default:
      return null;
  }
}

/**
 * One SSE event's data: a msg JSON (its `type` may be left out, and the event id is its
 * seq when the data carries none) or any other server frame.
 */
export function parseSseData(text: string, lastEventId: string | undefined): ServerFrame | null {
  const value = parseRecord(text);
  if (!value) return null;
  if (value.type !== undefined && value.type !== "msg") return frameFrom(value);
  const seq = isSeq(value.seq) ? value.seq : lastEventId ? Number(lastEventId) : Number.NaN;
  const msg = asMsg({ ...value, seq });
  return msg ? { ...msg, type: "msg" } : null;
}
