import { useCallback, useEffect, useState } from "react";
import { httpUrlFor, type TickwireClient } from "./client";
import { HopLatencyPanel } from "./components/HopLatencyPanel";
import { PerfPanel } from "./components/PerfPanel";
import { PriceChart } from "./components/PriceChart";
import { ReconnectHistory } from "./components/ReconnectHistory";
import { StatusIndicator } from "./components/StatusIndicator";
import { TickerTable } from "./components/TickerTable";
import { TopicPicker } from "./components/TopicPicker";
import { TradesTape } from "./components/TradesTape";
import { useClientStats } from "./hooks/useClientStats";
import { useHopLatency } from "./hooks/useHopLatency";
import { useFirstSymbol } from "./hooks/useMarket";
import { useSampled } from "./hooks/useSampled";
import type { MarketStore } from "./market/store";

interface Props {
  client: TickwireClient;
  store: MarketStore;
  /** Where the per-hop latency comes from until the client is connected (the page's gateway). */
  latencyUrl: string;
}

const HISTOGRAM_EDGES = [1, 2, 5, 10, 20, 50, 100, 250, 500, 1000];
/** The p99 sparkline: one sample a second over the last five minutes. */
const P99_SAMPLES = 300;

export function App({ client, store, latencyUrl }: Props) {
  const stats = useClientStats(client);
  // The gateway the client is connected to: after a failover the panel follows it.
  const hops = useHopLatency(stats.url ? httpUrlFor(stats.url, "api/latency") : latencyUrl);
  const p99History = useSampled(() => client.stats().latency?.p99 ?? null, 1000, P99_SAMPLES);
  const [picked, setPicked] = useState<string | null>(null);
  // Until the user picks one, chart the first symbol to arrive.
  const first = useFirstSymbol(store);
  const selected = picked ?? first;

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
        <TickerTable store={store} selected={selected} onSelect={setPicked} />
        <div className="middle">
          <PriceChart store={store} symbol={selected} />
          <TradesTape store={store} />
        </div>
        <div className="side">
          <PerfPanel
            stats={stats}
            histogram={{ edges: HISTOGRAM_EDGES, counts: client.latencyHistogram(HISTOGRAM_EDGES) }}
            p99History={p99History}
            p99Capacity={P99_SAMPLES}
            uiDuplicates={store.duplicates}
          />
          <HopLatencyPanel {...hops} />
          <ReconnectHistory history={stats.history} />
        </div>
      </main>
    </div>
  );
}
