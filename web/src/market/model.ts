/** What the dashboard shows, derived from messages (tolerant of missing fields). */

export interface TickerRow {
  symbol: string;
  topic: string;
  bid: number | null;
  ask: number | null;
  last: number | null;
  /** From the data's `change` when given, else last minus the first price seen. */
  change: number | null;
  /** Direction of the latest change of `last`, for the flash. */
  direction: "up" | "down" | null;
  /** Bumped on each update, so a re-render restarts the flash animation. */
  version: number;
}

export interface Trade {
  key: number;
  symbol: string;
  price: number | null;
  size: number | null;
  side: string | null;
  /** Origin time in ms (receive time when the message had none). */
  at: number;
}

export interface PricePoint {
  /** Whole seconds since the epoch (the chart's UTCTimestamp). */
  time: number;
  value: number;
}

export function numberOr(value: unknown, fallback: number | null = null): number | null {
  if (typeof value === "number" && Number.isFinite(value)) return value;
  if (typeof value === "string" && value.trim() !== "") {
    const parsed = Number(value);
    if (Number.isFinite(parsed)) return parsed;
  }
  return fallback;
}

export function record(value: unknown): Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

/** The symbol of a message: its data's `symbol`, else the topic's last token. */
export function symbolOf(topic: string, data: Record<string, unknown>): string {
  if (typeof data.symbol === "string" && data.symbol) return data.symbol;
  return topic.slice(topic.lastIndexOf(".") + 1);
}
