import { fixed } from "../format";
import type { HopLatency } from "../hooks/useHopLatency";

/** Per-hop latency percentiles as the gateway reports them, whatever columns it gives. */
export function HopLatencyPanel({ table, error }: HopLatency) {
  const unit = table?.unit ?? "ms";
  return (
    <section className="panel hops" aria-labelledby="hops-title">
      <h2 id="hops-title">
        Per-hop latency <span className="muted">{unit}</span>
      </h2>
      {table && table.rows.length > 0 ? (
        <div className="scroll">
          <table className="grid">
            <thead>
              <tr>
                <th scope="col">Hop</th>
                {table.columns.map((column) => (
                  <th scope="col" className="num" key={column}>
                    {column}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {table.rows.map((row) => (
                <tr key={row.name}>
                  <th scope="row">{row.name}</th>
                  {table.columns.map((column) => (
                    <td className="num" key={column}>
                      {/* "n" is a sample count, the rest are milliseconds */}
                      {fixed(row.values[column], column === "n" ? 0 : 2)}
                    </td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : (
        <p className="empty">{error ? `No data (${error})` : "No data yet"}</p>
      )}
    </section>
  );
}
