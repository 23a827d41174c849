import type { ClientStats } from "../client";
import { fixed, latencyTone, ms, type LatencyTone } from "../format";
import { LatencyHistogram } from "./LatencyHistogram";
import { Sparkline } from "./Sparkline";

interface Props {
  stats: ClientStats;
  histogram: { edges: readonly number[]; counts: readonly number[] };
  /** p99 once a second, oldest first. */
  p99History: readonly (number | null)[];
  p99Capacity: number;
  /** Duplicates the market store saw after the client's own de-duplication: must stay 0. */
  uiDuplicates: number;
}

interface StatProps {
  label: string;
  value: string;
  testId?: string;
  alert?: boolean;
  tone?: LatencyTone | null;
}

function Stat({ label, value, testId, alert = false, tone = null }: StatProps) {
  const classes = ["stat", alert ? "alert" : "", tone ? `tone-${tone}` : ""].filter(Boolean).join(" ");
  return (
    <div className={classes}>
      <dt>{label}</dt>
      <dd data-testid={testId} data-tone={tone ?? undefined}>
        {value}
      </dd>
    </div>
  );
}

/** End-to-end latency (coloured by threshold, p99 over the last minutes), throughput and
 * the continuity counters a trader checks: gaps and duplicates. */
export function PerfPanel({ stats, histogram, p99History, p99Capacity, uiDuplicates }: Props) {
  const latency = stats.latency;
  const minutes = Math.round((p99Capacity / 60) * 10) / 10;
  return (
    <section className="panel perf" aria-labelledby="perf-title" data-testid="panel-perf">
      <h2 id="perf-title">
        Latency <span className="muted">origin → screen, ms · green &lt; 50 · red &gt; 100</span>
      </h2>
      <dl className="stats">
        <Stat label="p50 ms" value={ms(latency?.p50)} testId="stat-p50" tone={latencyTone(latency?.p50)} />
        <Stat label="p95 ms" value={ms(latency?.p95)} testId="stat-p95" tone={latencyTone(latency?.p95)} />
        <Stat label="p99 ms" value={ms(latency?.p99)} testId="stat-p99" tone={latencyTone(latency?.p99)} />
        <Stat label="msg/s" value={Math.round(stats.msgPerSecond).toLocaleString()} testId="stat-rate" />
      </dl>
      <figure className="spark">
        <figcaption className="muted">p99, last {minutes} min · log scale, dashed: 50 and 100 ms</figcaption>
        <Sparkline values={p99History} capacity={p99Capacity} label={`p99 latency over the last ${minutes} minutes`} />
      </figure>
      <LatencyHistogram edges={histogram.edges} counts={histogram.counts} />
      <dl className="stats">
        <Stat label="messages" value={stats.messages.toLocaleString()} testId="stat-msgs" />
        <Stat label="gaps" value={String(stats.gaps)} testId="stat-gaps" alert={stats.gaps > 0} />
        <Stat label="dups in UI" value={String(uiDuplicates)} testId="stat-ui-duplicates" alert={uiDuplicates > 0} />
        <Stat label="dups dropped" value={String(stats.duplicates)} testId="stat-duplicates" />
        <Stat label="upstream gaps" value={String(stats.upstreamGaps)} testId="stat-upstream-gaps" alert={stats.upstreamGaps > 0} />
        <Stat label="reconnects" value={String(stats.reconnects)} testId="stat-reconnects" />
        <Stat label="clock offset" value={`${fixed(stats.clockOffsetMs, 1)}`} />
        <Stat label="RTT ms" value={fixed(stats.rttMs, 1)} />
      </dl>
    </section>
  );
}
