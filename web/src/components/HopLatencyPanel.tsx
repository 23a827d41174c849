import { fixed, latencyTone, ms } from "../format";
import type { HopLatency } from "../hooks/useHopLatency";

const LOOP_LAG = "event-loop lag";

function Cells({ columns, values }: { columns: readonly string[]; values: Record<string, number> }) {
  return (
    <>
      {columns.map((column) => {
        // "n" is a sample count, the rest are milliseconds and coloured by threshold.
        const count = column === "n" || column === "count";
        const tone = count ? null : latencyTone(values[column]);
        return (
          <td className={`num${tone ? ` tone-${tone}` : ""}`} key={column}>
            {count ? fixed(values[column], 0) : ms(values[column])}
          </td>
        );
      })}
    </>
  );
}

/** Per-hop latency percentiles as the gateway reports them, and its event-loop lag. */
export function HopLatencyPanel({ table, error }: HopLatency) {
  const unit = table?.unit ?? "ms";
  const columns = table ? [...new Set([...table.columns, ...Object.keys(table.loopLag ?? {})])] : [];
  return (
    <section className="panel hops" aria-labelledby="hops-title" data-testid="panel-hops">
      <h2 id="hops-title">
        Per-hop latency{" "}
        <span className="muted">
          {unit}
          {table?.node ? ` · ${table.node}` : ""}
        </span>
      </h2>
      {table && (table.rows.length > 0 || table.loopLag) ? (
        <table className="grid compact">
          <thead>
            <tr>
              <th scope="col">Hop</th>
              {columns.map((column) => (
                <th scope="col" className="num" key={column}>
                  {column}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {table.rows.map((row) => (
              <tr key={row.name}>
                <th scope="row" title={row.name}>
                  {row.name.replaceAll("_", " ")}
                </th>
                <Cells columns={columns} values={row.values} />
              </tr>
            ))}
          </tbody>
          <tbody className="loop-lag" data-testid="loop-lag">
            <tr>
              <th scope="row" title="How late the gateway's asyncio loop runs its callbacks: every hop after it waits that long">
                {LOOP_LAG}
              </th>
              {table.loopLag ? (
                <Cells columns={columns} values={table.loopLag} />
              ) : (
                <td className="muted" colSpan={columns.length}>
                  not reported by this gateway
                </td>
              )}
            </tr>
          </tbody>
        </table>
      ) : (
        <p className="empty">{error ? `No data (${error})` : "No data yet"}</p>
      )}
    </section>
  );
}
