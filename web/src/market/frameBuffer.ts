/**
 * Collects messages as they arrive and hands them over once per animation frame, so a
 * burst of thousands of messages costs one render, not thousands.
 */

import type { MsgFrame } from "../client/protocol";

export type RequestFrame = (callback: () => void) => void;

export class FrameBuffer {
  private pending: MsgFrame[] = [];
  private scheduled = false;

  constructor(
    private readonly drain: (msgs: MsgFrame[]) => void,
    private readonly requestFrame: RequestFrame = (cb) => requestAnimationFrame(cb),
    private readonly maxPending = 20_000,
  ) {}

  push(msg: MsgFrame): void {
    this.pending.push(msg);
    // A hidden tab gets no animation frames: drain early rather than let the buffer grow.
    if (this.pending.length >= this.maxPending) {
      this.flush();
      return;
    }
    if (this.scheduled) return;
    this.scheduled = true;
    this.requestFrame(() => this.flush());
  }

  private flush(): void {
    const msgs = this.pending;
    this.pending = [];
    // A frame already requested finds the buffer empty and drains nothing.
    this.scheduled = false;
    if (msgs.length) this.drain(msgs);
  }
}
