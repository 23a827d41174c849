import { memo } from "react";
import { fixed, signed } from "../format";
import type { TickerRow } from "../market/model";

interface Props {
  rows: readonly TickerRow[];
  selected: string | null;
  onSelect: (symbol: string) => void;
}

const Row = memo(function Row({ row, selected, onSelect }: { row: TickerRow; selected: boolean; onSelect: (s: string) => void }) {
  const flash = row.direction ? `flash-${row.direction}` : "";
  const tone = row.change === null || row.change === 0 ? "" : row.change > 0 ? "up" : "down";
  return (
    <tr
      data-testid={`ticker-row-${row.symbol}`}
      className={selected ? "selected" : undefined}
      aria-selected={selected}
      tabIndex={0}
      onClick={() => onSelect(row.symbol)}
      onKeyDown={(event) => {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          onSelect(row.symbol);
        }
      }}
    >
      <th scope="row">{row.symbol}</th>
      <td className="num">{fixed(row.bid)}</td>
      <td className="num">{fixed(row.ask)}</td>
      {/* Keyed by version so the flash animation restarts on every update. */}
      <td className={`num ${flash}`} key={row.version}>
        {fixed(row.last)}
      </td>
      <td className={`num ${tone}`}>{signed(row.change)}</td>
    </tr>
  );
});

/** One row per symbol, updated at most once per frame with its newest tick. */
export function TickerTable({ rows, selected, onSelect }: Props) {
  return (
    <section className="panel tickers" aria-labelledby="tickers-title">
      <h2 id="tickers-title">Tickers</h2>
      <div className="scroll">
        <table className="grid">
          <thead>
            <tr>
              <th scope="col">Symbol</th>
              <th scope="col" className="num">Bid</th>
              <th scope="col" className="num">Ask</th>
              <th scope="col" className="num">Last</th>
              <th scope="col" className="num">Chg</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((row) => (
              <Row key={row.symbol} row={row} selected={row.symbol === selected} onSelect={onSelect} />
            ))}
          </tbody>
        </table>
        {!rows.length && <p className="empty">Waiting for ticks…</p>}
      </div>
    </section>
  );
}
