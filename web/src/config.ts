/**
 * The page's settings, from its own URL: the gateway list (`?gateways=host:port,…`; without
 * it the page's own origin, then the gateways its gateway names in `/api/dashboard`), the
 * initial topics (`?topics=`), the transport (`?transport=`) and,
 * when the gateways require auth, a token in the fragment (`#token=…`): a fragment never
 * reaches a server or its logs, and the page removes it from the address bar once read.
 */

export type TransportChoice = "auto" | "ws" | "sse";

export interface PageConfig {
  gateways: string[];
  topics: string[];
  transport: TransportChoice;
  token?: string;
}

/** The gateway list the serving gateway gives the dashboard; none when it has no such endpoint. */
export async function fetchServedGateways(url: string, timeoutMs = 2000): Promise<string[]> {
  try {
    const response = await fetch(url, { headers: { accept: "application/json" }, signal: AbortSignal.timeout(timeoutMs) });
    if (!response.ok) return [];
    const body: unknown = await response.json();
    const gateways = (body as { gateways?: unknown } | null)?.gateways;
    return Array.isArray(gateways) ? gateways.filter((g): g is string => typeof g === "string" && g.length > 0) : [];
  } catch {
    return [];
  }
}

export const DEFAULT_TOPICS = ["ticks.*", "trades.*"];

interface PageLocation {
  protocol: string;
  host: string;
  search: string;
  hash?: string;
}

function list(value: string | null): string[] {
  return (value ?? "")
    .split(",")
    .map((item) => item.trim())
    .filter(Boolean);
}

/**
 * `served`: the gateways the serving gateway lists (`tickwire up --gateways N` lists all N
 * local replicas); behind one load-balanced origin it lists none and the page's own origin
 * is the only entry. The page's own gateway always comes first.
 */
export function readPageConfig(location: PageLocation, served: readonly string[] = []): PageConfig {
  const params = new URLSearchParams(location.search);
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  // An entry may be a full ws(s):// URL, or host:port for the gateway's /ws.
  const toUrl = (entry: string) => (entry.includes("://") ? entry : `${scheme}//${entry}/ws`);
  const given = list(params.get("gateways")).map(toUrl);
  const own = `${scheme}//${location.host}/ws`;
  const transport = params.get("transport");
  const token = new URLSearchParams((location.hash ?? "").replace(/^#/, "")).get("token");
  return {
    gateways: given.length ? given : [...new Set([own, ...served.map(toUrl)])],
    topics: params.has("topics") ? list(params.get("topics")) : DEFAULT_TOPICS,
    transport: transport === "ws" || transport === "sse" ? transport : "auto",
    ...(token ? { token } : {}),
  };
}
