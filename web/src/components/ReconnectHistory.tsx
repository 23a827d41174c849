import type { ConnectionRecord } from "../client";
import { clockTime, hostOf } from "../format";

interface Props {
  history: readonly ConnectionRecord[];
}

const CLOSE_NAMES: Record<number, string> = {
  1000: "closed",
  1006: "lost",
  1011: "server error",
  1012: "draining",
  1013: "full",
  4008: "slow consumer",
};

/** Every connection of this page, newest first: when, to which node, over what, and after how long without one. */
export function ReconnectHistory({ history }: Props) {
  const newestFirst = [...history].reverse();
  return (
    <section className="panel history" aria-labelledby="history-title" data-testid="panel-history">
      <h2 id="history-title">
        Connections <span className="muted">{Math.max(0, history.length - 1)} reconnects</span>
      </h2>
      {newestFirst.length ? (
        <ol className="scroll history-list" data-testid="reconnect-history">
          {newestFirst.map((entry, i) => (
            <li key={`${entry.at}-${i}`} data-node={entry.node ?? hostOf(entry.url)} data-transport={entry.transport}>
              <span className="muted">{clockTime(entry.at)}</span>
              <span className="node">{entry.node ?? hostOf(entry.url)}</span>
              <span className="transport">{entry.transport === "ws" ? "WS" : "SSE"}</span>
              <span className="muted">
                {entry.downMs === null
                  ? "first"
                  : entry.afterCode === null
                    ? "back from SSE"
                    : `${CLOSE_NAMES[entry.afterCode] ?? `close ${entry.afterCode}`}, ${(entry.downMs / 1000).toFixed(1)} s down`}
              </span>
            </li>
          ))}
        </ol>
      ) : (
        <p className="empty">Not connected yet</p>
      )}
    </section>
  );
}
