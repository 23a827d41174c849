/** Number formatting shared by the panels: fixed decimals, a dash for "no value". */

export function fixed(value: number | null | undefined, digits = 2): string {
  return typeof value === "number" && Number.isFinite(value) ? value.toFixed(digits) : "–";
}

/** Milliseconds in as few characters as stay readable: 7.5, 655, 12.3 s. */
export function ms(value: number | null | undefined): string {
  if (typeof value !== "number" || !Number.isFinite(value)) return "–";
  if (value < 100) return value.toFixed(1);
  if (value < 10_000) return value.toFixed(0);
  return `${(value / 1000).toFixed(1)} s`;
}

export function signed(value: number | null | undefined, digits = 2): string {
  if (typeof value !== "number" || !Number.isFinite(value)) return "–";
  return `${value > 0 ? "+" : ""}${value.toFixed(digits)}`;
}

export function clockTime(ms: number): string {
  const date = new Date(ms);
  const pad = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
}

export type LatencyTone = "good" | "warn" | "bad";

/** Where a trader's eye should go: green under 50 ms, amber up to 100 ms, red above. */
export const LATENCY_THRESHOLDS_MS = { warn: 50, bad: 100 } as const;

export function latencyTone(ms: number | null | undefined): LatencyTone | null {
  if (typeof ms !== "number" || !Number.isFinite(ms)) return null;
  if (ms > LATENCY_THRESHOLDS_MS.bad) return "bad";
  return ms >= LATENCY_THRESHOLDS_MS.warn ? "warn" : "good";
}

/** Host and port of a gateway URL, to name it where the server gave no node name (SSE). */
export function hostOf(url: string | null): string {
  if (!url) return "";
  try {
    return new URL(url).host;
  } catch {
    return "";
  }
}
