/**
 * What the client is subscribed to and how far it has read: the bookkeeping behind
 * resume-with-`since`, de-duplication and order checks.
 *
 * Two positions are kept. Per subscription (pattern): the highest seq seen on it, sent back
 * as `since` on resume (design §2, object form). Per concrete topic: the highest seq
 * delivered, so a message already seen (a replay overlapping what arrived before a drop, or
 * one matched by two overlapping patterns) is dropped and the application sees it once.
 */

import { topicMatches } from "./topics.ts";

interface Subscription {
  /** Highest seq seen on this subscription, or null before any message. */
  highest: number | null;
  /**
   * Stream head when the server answered a snapshot subscription. Messages at or below it
   * are the snapshot (one per subject, in no promised order), so they are exempt from the
   * order check; it also serves as `since` if no message has arrived yet.
   */
  head: number | null;
  /** Sent without `since`, so the next `subscribed` for it carries the snapshot's head. */
  awaitingHead: boolean;
}

export type Verdict =
  /** New for its topic and in order: deliver it. */
  | "deliver"
  /** New for its topic but older than one already seen on its subscription: deliver, count a gap. */
  | "deliver-out-of-order"
  /** Seq already seen on this topic: drop it. */
  | "duplicate"
  /** Matches no current subscription (e.g. in flight when it was removed): drop it. */
  | "unsubscribed";

export class SubscriptionBook {
  private readonly subs = new Map<string, Subscription>();
  private readonly delivered = new Map<string, number>();
  /** The stream lifetime the positions belong to (from `subscribed`). */
  epoch: string | null = null;

  patterns(): string[] {
    return [...this.subs.keys()];
  }

  /** Adds patterns; returns those that were new. */
  add(patterns: readonly string[]): string[] {
    const added: string[] = [];
    for (const pattern of patterns) {
      if (this.subs.has(pattern)) continue;
      this.subs.set(pattern, { highest: null, head: null, awaitingHead: false });
      added.push(pattern);
    }
    return added;
  }

  /** Removes patterns; returns those that were present. */
  remove(patterns: readonly string[]): string[] {
    const removed = patterns.filter((p) => this.subs.delete(p));
    // Forget topics no remaining pattern covers, so subscribing again shows a fresh snapshot.
    for (const topic of this.delivered.keys()) {
      if (!this.matching(topic).length) this.delivered.delete(topic);
    }
    return removed;
  }

  /**
   * The `since` to send for these patterns: per pattern, the highest seq seen (or the
   * snapshot head). Patterns with no position are left out and get a snapshot; undefined
   * when none has one. Marks the left-out patterns as awaiting their snapshot head.
   */
  sinceFor(patterns: readonly string[]): Record<string, number> | undefined {
    const since: Record<string, number> = {};
    let any = false;
    for (const pattern of patterns) {
      const sub = this.subs.get(pattern);
      if (!sub) continue;
      const position = maxOf(sub.highest, sub.head);
      if (position === null) {
        sub.awaitingHead = true;
      } else {
        since[pattern] = position;
        sub.awaitingHead = false;
        any = true;
      }
    }
    return any ? since : undefined;
  }

  /**
   * One position for transports that take a single `since` (SSE): the lowest of the
   * patterns' positions, so nothing is skipped; the overlap is dropped as duplicates.
   */
  lowestSince(): number | undefined {
    let lowest: number | undefined;
    for (const sub of this.subs.values()) {
      const position = maxOf(sub.highest, sub.head);
      if (position !== null && (lowest === undefined || position < lowest)) lowest = position;
    }
    return lowest;
  }

  /** Records a `subscribed` answer; returns the patterns whose state must be dropped. */
  confirm(patterns: readonly string[], head: number | undefined, epoch: string | undefined, recovered: boolean | undefined): string[] {
    if (typeof epoch === "string") this.epoch = epoch;
    const lost: string[] = [];
    for (const pattern of patterns) {
      const sub = this.subs.get(pattern);
      if (!sub) continue;
      if (recovered === false) {
        // Continuity is gone (retention passed or another epoch): positions from before mean
        // nothing now, and a snapshot follows (design §2).
        this.forget(pattern, sub);
        sub.head = head ?? null;
        lost.push(pattern);
      } else if (sub.awaitingHead) {
        sub.head = head ?? null;
      }
      sub.awaitingHead = false;
    }
    return lost;
  }

  /** Decides what to do with a message and, unless dropped, advances the positions. */
  accept(topic: string, seq: number): Verdict {
    const seen = this.delivered.get(topic);
    if (seen !== undefined && seq <= seen) return "duplicate";
    const subs = this.matching(topic);
    if (!subs.length) return "unsubscribed";
    let inOrder = true;
    for (const sub of subs) {
      const live = sub.head === null || seq > sub.head;
      if (live && sub.highest !== null && seq < sub.highest) inOrder = false;
      if (sub.highest === null || seq > sub.highest) sub.highest = seq;
    }
    this.delivered.set(topic, seq);
    return inOrder ? "deliver" : "deliver-out-of-order";
  }

  private matching(topic: string): Subscription[] {
    const found: Subscription[] = [];
    for (const [pattern, sub] of this.subs) if (topicMatches(pattern, topic)) found.push(sub);
    return found;
  }

  private forget(pattern: string, sub: Subscription): void {
    sub.highest = null;
    for (const topic of [...this.delivered.keys()]) {
      if (topicMatches(pattern, topic)) this.delivered.delete(topic);
    }
  }
}

function maxOf(a: number | null, b: number | null): number | null {
  if (a === null) return b;
  if (b === null) return a;
  return Math.max(a, b);
}
