/** Number formatting shared by the panels: fixed decimals, a dash for "no value". */

export function fixed(value: number | null | undefined, digits = 2): string {
  return typeof value === "number" && Number.isFinite(value) ? value.toFixed(digits) : "–";
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
