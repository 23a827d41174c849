/**
 * The page's settings, from its own URL: the gateway list (`?gateways=host:port,…`, default
 * the page's own origin), the initial topics (`?topics=`), the transport (`?transport=`) and,
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

export function readPageConfig(location: PageLocation): PageConfig {
  const params = new URLSearchParams(location.search);
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  // An entry may be a full ws(s):// URL, or host:port for the gateway's /ws.
  const given = list(params.get("gateways")).map((entry) => (entry.includes("://") ? entry : `${scheme}//${entry}/ws`));
  const transport = params.get("transport");
  const token = new URLSearchParams((location.hash ?? "").replace(/^#/, "")).get("token");
  return {
    gateways: given.length ? given : [`${scheme}//${location.host}/ws`],
    topics: params.has("topics") ? list(params.get("topics")) : DEFAULT_TOPICS,
    transport: transport === "ws" || transport === "sse" ? transport : "auto",
    ...(token ? { token } : {}),
  };
}
