import type { ClientStats } from "../client";
import { hostOf } from "../format";

interface Props {
  stats: ClientStats;
  /** Local time in ms, for the countdown to the next attempt. */
  now: number;
  onRetry: () => void;
}

interface Look {
  label: string;
  tone: "ok" | "warn" | "bad";
}

function look(stats: ClientStats): Look {
  switch (stats.state) {
    case "connected":
      return { label: stats.transport === "sse" ? "Connected (SSE)" : "Connected", tone: "ok" };
    case "connecting":
      return { label: "Connecting", tone: "warn" };
    case "reconnecting":
      return { label: "Reconnecting", tone: "warn" };
    case "failed":
      return { label: "Failed", tone: "bad" };
    case "closed":
      return { label: "Closed", tone: "bad" };
  }
}

/** Connection state in words and colour; the live region announces state changes only. */
export function StatusIndicator({ stats, now, onRetry }: Props) {
  const { label, tone } = look(stats);
  const wait = stats.nextRetryAt === null ? null : Math.max(0, Math.ceil((stats.nextRetryAt - now) / 1000));
  return (
    <div className={`status status-${tone}`}>
      <div
        role="status"
        aria-live="polite"
        data-testid="status"
        data-transport={stats.transport ?? undefined}
        className="status-text"
        title={stats.lastError ?? undefined}
      >
        <span className="status-dot" aria-hidden="true" />
        <span>{label}</span>
        {wait !== null && <span aria-hidden="true"> in {wait} s</span>}
        {/* SSE has no welcome frame, so there the gateway's address names it. */}
        <span className="status-node" data-testid="status-node">
          {stats.node ?? (stats.state === "connected" ? hostOf(stats.url) : "")}
        </span>
      </div>
      {(stats.state === "failed" || stats.state === "reconnecting") && (
        <button type="button" className="button" onClick={onRetry}>
          Retry{stats.state === "reconnecting" ? " now" : ""}
        </button>
      )}
    </div>
  );
}
