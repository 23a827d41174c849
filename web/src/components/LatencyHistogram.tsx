interface Props {
  /** Bucket upper bounds in ms; the last bucket holds everything above the last edge. */
  edges: readonly number[];
  counts: readonly number[];
}

/** Bars of the recent latency distribution; heights relative to the fullest bucket. */
export function LatencyHistogram({ edges, counts }: Props) {
  const peak = Math.max(1, ...counts);
  const labels = [...edges.map((e) => `<${e}`), `≥${edges[edges.length - 1] ?? 0}`];
  const total = counts.reduce((a, b) => a + b, 0);
  return (
    <figure className="histogram">
      <div className="bars" role="img" aria-label={`Latency histogram of ${total} recent messages`}>
        {counts.map((count, i) => (
          <div key={labels[i]} className="bar" title={`${labels[i]} ms: ${count}`}>
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
