/**
 * Clock offset and round-trip time from ping/pong, NTP-style: assuming the server stamped
 * its reply halfway through the round trip, offset = server − (t0 + t1) / 2. The sample with
 * the smallest RTT has the least room for asymmetric delay, so it is the one kept.
 */

export class ClockSync {
  /** Server clock minus local clock, ms. Zero until the first sample. */
  offsetMs = 0;
  /** RTT of the sample behind `offsetMs`, or null before one. */
  rttMs: number | null = null;

  /**
   * @param sentMs local time the ping was sent
   * @param receivedMs local time the pong arrived
   * @param serverUs server time in the pong, µs since the epoch
   */
  sample(sentMs: number, receivedMs: number, serverUs: number): void {
    const rtt = receivedMs - sentMs;
    if (rtt < 0 || !Number.isFinite(serverUs)) return;
    if (this.rttMs !== null && rtt >= this.rttMs) return;
    this.rttMs = rtt;
    this.offsetMs = serverUs / 1000 - (sentMs + receivedMs) / 2;
  }

  /**
   * A new connection may reach another replica with its own clock: the next sample wins
   * whatever its RTT, while the old offset stays in use until it arrives.
   */
  newPeer(): void {
    this.rttMs = null;
  }

  /** Local time converted to the server's clock, ms since the epoch. */
  serverNow(localMs: number): number {
    return localMs + this.offsetMs;
  }
}
