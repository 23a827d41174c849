/**
 * Collects what the `report` frame tells the gateway (design §4): a receipt per traced
 * message, so the browser hop lands in the same trace, and the latency figures measured
 * since the previous report.
 */

import { percentile } from "./metrics.ts";
import type { Receipt, ReportFrame } from "./protocol.ts";

/** The gateway refuses reports with more receipts than this (services/protocol.py). */
export const MAX_RECEIPTS = 1000;
/** Latency samples kept between reports; beyond it new samples replace random old ones. */
const MAX_SAMPLES = 10_000;

export class TraceReporter {
  private receipts: Receipt[] = [];
  private samples: number[] = [];
  private seen = 0;

  constructor(private readonly random: () => number) {}

  receipt(seq: number, trace: string, receivedUs: number): void {
    // Traces are sampled at the origin, so the cap is rarely reached; past it receipts are
    // dropped rather than grow the frame beyond what the server accepts.
    if (this.receipts.length < MAX_RECEIPTS) this.receipts.push({ seq, trace, t: Math.round(receivedUs) });
  }

  latency(ms: number): void {
    this.seen++;
    if (this.samples.length < MAX_SAMPLES) {
      this.samples.push(ms);
      return;
    }
    // Reservoir sampling keeps the percentiles unbiased without unbounded memory.
    const slot = Math.floor(this.random() * this.seen);
    if (slot < MAX_SAMPLES) this.samples[slot] = ms;
  }

  /** The report for everything since the last one, or null when there is nothing to say. */
  take(): ReportFrame | null {
    if (!this.receipts.length && !this.samples.length) return null;
    const sorted = this.samples.sort((a, b) => a - b);
    const round = (v: number) => (Number.isNaN(v) ? 0 : Math.round(v * 1000) / 1000);
    const frame: ReportFrame = {
      type: "report",
      received: this.receipts,
      latency: { n: this.seen, p50: round(percentile(sorted, 50)), p99: round(percentile(sorted, 99)) },
    };
    this.receipts = [];
    this.samples = [];
    this.seen = 0;
    return frame;
  }
}
