interface Props {
  /** Bucket upper bounds in ms; the last bucket holds everything above the last edge. */
  edges: readonly number[];
  counts: readonly number[];
}

/** Bars of the recent latency distribution; heights relative to the fullest bucket. */
export function LatencyHistogram({ edges, counts }: Props) {
  const peak = Math.max(1, ...counts);
  // Short labels ("<1s", not "<1000") so eleven of them fit a narrow panel.
  const short = (edge: number) => (edge >= 1000 ? `${edge / 1000}s` : String(edge));
  const labels = [...edges.map((e) => `<${short(e)}`), `≥${short(edges[edges.length - 1] ?? 0)}`];
  const titles = [...edges.map((e) => `< ${e} ms`), `≥ ${edges[edges.length - 1] ?? 0} ms`];
  const total = counts.reduce((a, b) => a + b, 0);
  return (
    <figure className="histogram">
      <div className="bars" role="img" aria-label={`Latency histogram of ${total} recent messages`}>
        {counts.map((count, i) => (
          <div key={labels[i]} className="bar" title={`${titles[i]}: ${count}`}>
            <span style={{ height: `${(count / peak) * 100}%` }} />
          </div>
        ))}
      </div>
      <figcaption className="bar-labels" aria-hidden="true">
        {labels.map((label) => (
          <span key={label}>{label}</span>
        ))}
      </figcaption>
    </figure>
  );
}
