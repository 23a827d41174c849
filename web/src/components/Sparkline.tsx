import { LATENCY_THRESHOLDS_MS, latencyTone } from "../format";

interface Props {
  /** Oldest first, one per sample interval; null where there was no measurement. */
  values: readonly (number | null)[];
  /** How many samples the full width stands for, so the line grows in from the right. */
  capacity: number;
  label: string;
}

const WIDTH = 300;
const HEIGHT = 48;

/** A latency line over time with the amber and red thresholds drawn in, on a log scale that
 * always shows both: "under the lines" reads as fine at a glance, and a spike of seconds
 * still fits without flattening everything below 100 ms. */
export function Sparkline({ values, capacity, label }: Props) {
  const measured = values.filter((v): v is number => v !== null);
  const top = Math.log1p(Math.max(LATENCY_THRESHOLDS_MS.bad * 2, ...measured) * 1.1);
  const y = (ms: number) => HEIGHT - (Math.log1p(Math.max(0, ms)) / top) * HEIGHT;
  const step = WIDTH / Math.max(1, capacity - 1);
  const offset = capacity - values.length;
  // One sub-path per run of measured samples: a gap in the data stays a gap in the line.
  let path = "";
  values.forEach((value, i) => {
    if (value === null) return;
    const command = i > 0 && values[i - 1] !== null ? "L" : "M";
    path += `${command}${((offset + i) * step).toFixed(1)},${y(value).toFixed(1)}`;
  });
  const last = measured.at(-1) ?? null;
  const tone = latencyTone(last);
  return (
    <svg
      className={`sparkline${tone ? ` tone-${tone}` : ""}`}
      viewBox={`0 0 ${WIDTH} ${HEIGHT}`}
      preserveAspectRatio="none"
      role="img"
      aria-label={label}
      data-testid="p99-sparkline"
      data-samples={measured.length}
    >
      <line className="threshold warn" x1="0" x2={WIDTH} y1={y(LATENCY_THRESHOLDS_MS.warn)} y2={y(LATENCY_THRESHOLDS_MS.warn)} />
      <line className="threshold bad" x1="0" x2={WIDTH} y1={y(LATENCY_THRESHOLDS_MS.bad)} y2={y(LATENCY_THRESHOLDS_MS.bad)} />
      {path && <path d={path} vectorEffect="non-scaling-stroke" />}
    </svg>
  );
}
