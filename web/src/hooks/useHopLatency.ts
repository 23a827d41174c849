import { useEffect, useState } from "react";
import { parseHops, type HopTable } from "../hops";

export interface HopLatency {
  table: HopTable | null;
  error: string | null;
}

/** Polls the gateway's per-hop latency; slows down while the endpoint is missing. */
export function useHopLatency(url: string, intervalMs = 2000): HopLatency {
  const [state, setState] = useState<HopLatency>({ table: null, error: null });
  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const poll = async () => {
      let next = intervalMs;
      try {
        const response = await fetch(url, { headers: { accept: "application/json" } });
        if (!response.ok) {
          // An endpoint that is not there yet is asked again rarely, not every two seconds.
          if (response.status === 404) next = intervalMs * 15;
          throw new Error(`HTTP ${response.status}`);
        }
        const table = parseHops(await response.json());
        if (!stopped) setState({ table, error: null });
      } catch (error) {
        if (!stopped) setState((s) => ({ table: s.table, error: error instanceof Error ? error.message : "unavailable" }));
      }
      if (!stopped) timer = setTimeout(() => void poll(), next);
    };
    void poll();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [url, intervalMs]);
  return state;
}
