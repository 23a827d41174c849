/** Bounded live measurements: a sliding window of latency samples and a message rate. */

export interface Percentiles {
  n: number;
  p50: number;
  p95: number;
  p99: number;
}

/** Nearest-rank percentile of an ascending array; NaN when empty. */
export function percentile(sorted: readonly number[], p: number): number {
  if (!sorted.length) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] ?? Number.NaN;
}

export function percentilesOf(values: readonly number[]): Percentiles | null {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return { n: sorted.length, p50: percentile(sorted, 50), p95: percentile(sorted, 95), p99: percentile(sorted, 99) };
}

/** The last `capacity` samples, overwritten in a ring so memory stays fixed under any load. */
export class SampleWindow {
  private readonly ring: number[] = [];
  private next = 0;

  constructor(private readonly capacity = 2048) {}

  add(value: number): void {
    if (this.ring.length < this.capacity) this.ring.push(value);
    else this.ring[this.next] = value;
    this.next = (this.next + 1) % this.capacity;
  }

  values(): readonly number[] {
    return this.ring;
  }

  percentiles(): Percentiles | null {
    return percentilesOf(this.ring);
  }

  /** Counts per bucket: bucket i holds values < edges[i] (and ≥ edges[i−1]); the last one the rest. */
  histogram(edges: readonly number[]): number[] {
    const counts = new Array<number>(edges.length + 1).fill(0);
    for (const value of this.ring) {
      let i = 0;
      while (i < edges.length && value >= (edges[i] ?? Infinity)) i++;
      counts[i] = (counts[i] ?? 0) + 1;
    }
    return counts;
  }
}

/** Messages per second over the last few whole seconds, from per-second buckets. */
export class RateMeter {
  private readonly buckets = new Map<number, number>();

  constructor(private readonly windowSeconds = 3) {}

  add(nowMs: number, count = 1): void {
    const second = Math.floor(nowMs / 1000);
    this.buckets.set(second, (this.buckets.get(second) ?? 0) + count);
    for (const key of this.buckets.keys()) {
      if (key <= second - this.windowSeconds - 1) this.buckets.delete(key);
    }
  }

  /** Mean rate over the last `windowSeconds` complete seconds. */
  perSecond(nowMs: number): number {
    const current = Math.floor(nowMs / 1000);
    let total = 0;
    for (let s = current - this.windowSeconds; s < current; s++) total += this.buckets.get(s) ?? 0;
    return total / this.windowSeconds;
  }
}
