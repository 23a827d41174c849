import { useCallback, useEffect, useState } from "react";
import type { TickwireClient } from "./client";
import { HopLatencyPanel } from "./components/HopLatencyPanel";
import { PerfPanel } from "./components/PerfPanel";
import { PriceChart } from "./components/PriceChart";
import { StatusIndicator } from "./components/StatusIndicator";
import { TickerTable } from "./components/TickerTable";
import { TopicPicker } from "./components/TopicPicker";
import { TradesTape } from "./components/TradesTape";
import { useClientStats } from "./hooks/useClientStats";
import { useHopLatency } from "./hooks/useHopLatency";
import { useMarket } from "./hooks/useMarket";
import type { MarketStore } from "./market/store";

interface Props {
  client: TickwireClient;
  store: MarketStore;
  /** Where the per-hop latency comes from (same origin as the page). */
  latencyUrl: string;
}

const HISTOGRAM_EDGES = [1, 2, 5, 10, 20, 50, 100, 250, 500, 1000];

export function App({ client, store, latencyUrl }: Props) {
  useMarket(store);
  const stats = useClientStats(client);
  const hops = useHopLatency(latencyUrl);
  const rows = store.tickers();
  const [picked, setPicked] = useState<string | null>(null);
  // Until the user picks one, chart the first symbol to arrive.
  const selected = picked ?? rows[0]?.symbol ?? null;

  const addTopic = useCallback((topic: string) => client.subscribe([topic]), [client]);
  const removeTopic = useCallback(
    (topic: string) => {
      client.unsubscribe([topic]);
      store.resetTopic(topic);
    },
    [client, store],
  );

  useEffect(() => client.on("reset", (pattern) => store.resetTopic(pattern)), [client, store]);

  return (
    <div className="app">
      <header className="topbar">
        <h1 className="brand">
          Tick<span>wire</span>
        </h1>
        <StatusIndicator stats={stats} now={Date.now()} onRetry={() => client.retry()} />
        <TopicPicker topics={stats.subscriptions} onAdd={addTopic} onRemove={removeTopic} />
      </header>
      <main className="layout">
        <TickerTable rows={rows} selected={selected} onSelect={setPicked} />
        <div className="middle">
          <PriceChart store={store} symbol={selected} />
          <TradesTape trades={store.trades()} total={store.tradeCount} />
        </div>
        <div className="side">
          <PerfPanel stats={stats} histogram={{ edges: HISTOGRAM_EDGES, counts: client.latencyHistogram(HISTOGRAM_EDGES) }} />
          <HopLatencyPanel {...hops} />
        </div>
      </main>
    </div>
  );
}
