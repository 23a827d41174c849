import type { ClientStats } from "../client";
import { fixed } from "../format";
import { LatencyHistogram } from "./LatencyHistogram";

interface Props {
  stats: ClientStats;
  histogram: { edges: readonly number[]; counts: readonly number[] };
}

function Stat({ label, value, testId, alert = false }: { label: string; value: string; testId?: string; alert?: boolean }) {
  return (
    <div className={`stat${alert ? " alert" : ""}`}>
      <dt>{label}</dt>
      <dd data-testid={testId}>{value}</dd>
    </div>
  );
}

/** Client-side performance: end-to-end latency, throughput and the continuity counters. */
export function PerfPanel({ stats, histogram }: Props) {
  const latency = stats.latency;
  return (
    <section className="panel perf" aria-labelledby="perf-title">
      <h2 id="perf-title">Performance</h2>
      <dl className="stats">
        <Stat label="p50 ms" value={fixed(latency?.p50, 1)} testId="stat-p50" />
        <Stat label="p95 ms" value={fixed(latency?.p95, 1)} testId="stat-p95" />
        <Stat label="p99 ms" value={fixed(latency?.p99, 1)} testId="stat-p99" />
        <Stat label="msg/s" value={Math.round(stats.msgPerSecond).toLocaleString()} testId="stat-rate" />
        <Stat label="messages" value={String(stats.messages)} testId="stat-msgs" />
        <Stat label="reconnects" value={String(stats.reconnects)} testId="stat-reconnects" />
        <Stat label="gaps" value={String(stats.gaps)} testId="stat-gaps" alert={stats.gaps > 0} />
        <Stat label="duplicates dropped" value={String(stats.duplicates)} testId="stat-duplicates" />
        <Stat label="upstream gaps" value={String(stats.upstreamGaps)} testId="stat-upstream-gaps" alert={stats.upstreamGaps > 0} />
        <Stat label="clock offset ms" value={fixed(stats.clockOffsetMs, 1)} />
        <Stat label="RTT ms" value={fixed(stats.rttMs, 1)} />
      </dl>
      <LatencyHistogram edges={histogram.edges} counts={histogram.counts} />
    </section>
  );
}
