import { useEffect, useState } from "react";
import type { ClientStats, TickwireClient } from "../client";

/**
 * The client's stats, sampled a few times a second: stats are derived on demand (sorting the
 * latency window), so polling keeps that cost independent of the message rate.
 */
export function useClientStats(client: TickwireClient, intervalMs = 250): ClientStats {
  const [stats, setStats] = useState(() => client.stats());
  useEffect(() => {
    const refresh = () => setStats(client.stats());
    const timer = setInterval(refresh, intervalMs);
    // State changes show at once, not at the next tick.
    const off = client.on("state", refresh);
    return () => {
      clearInterval(timer);
      off();
    };
  }, [client, intervalMs]);
  return stats;
}
