/**
 * Per-hop latency from `/api/latency`, read defensively: its shape is expected to be
 * `{hops: {name: {p50, p90, p99, max, …}}}`, but any object of objects with numeric fields
 * is shown, and anything else yields no rows rather than an error. A top-level `loop_lag`
 * object (the gateway's event-loop lag) is read beside the hops, if present.
 */

export interface HopRow {
  name: string;
  values: Record<string, number>;
}

export interface HopTable {
  columns: string[];
  rows: HopRow[];
  unit: string | null;
  /** The gateway's event-loop lag (`loop_lag`: p50/p99/max in ms, n samples), when it reports one. */
  loopLag: Record<string, number> | null;
  /** The gateway that measured it. */
  node: string | null;
}

/** Known statistics first, in this order; any others after them, alphabetically. */
const PREFERRED = ["count", "n", "p50", "p90", "p95", "p99", "max"];

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function numericFields(value: unknown): Record<string, number> | null {
  if (!isObject(value)) return null;
  const fields: Record<string, number> = {};
  let any = false;
  for (const [key, field] of Object.entries(value)) {
    if (typeof field === "number" && Number.isFinite(field)) {
      fields[key] = field;
      any = true;
    }
  }
  return any ? fields : null;
}

export function parseHops(json: unknown): HopTable {
  const root = isObject(json) ? json : {};
  const source = isObject(root.hops) ? root.hops : root;
  const rows: HopRow[] = [];
  for (const [name, value] of Object.entries(source)) {
    const values = numericFields(value);
    if (values) rows.push({ name, values });
  }
  const keys = new Set(rows.flatMap((row) => Object.keys(row.values)));
  const columns = [...PREFERRED.filter((k) => keys.has(k)), ...[...keys].filter((k) => !PREFERRED.includes(k)).sort()];
  return { columns, rows, unit: typeof root.unit === "string" ? root.unit : null, loopLag: numericFields(root.loop_lag),
    node: typeof root.node === "string" ? root.node : null,
  };
}
