import { memo, useLayoutEffect, useRef } from "react";
import { fixed, signed } from "../format";
import { useMarket } from "../hooks/useMarket";
import { useVisibleRows } from "../hooks/useVisibleRows";
import type { TickerRow } from "../market/model";
import type { MarketStore } from "../market/store";

interface Props {
  store: MarketStore;
  selected: string | null;
  onSelect: (symbol: string) => void;
}

// Opacity only: the compositor runs the fade, so a flashing cell is not repainted in every
// frame of it (a background animation was, for every row that ticked in the last 0.6 s).
const FADE: Keyframe[] = [{ opacity: 1 }, { opacity: 0 }];
const FADE_TIMING: KeyframeAnimationOptions = { duration: 600, easing: "ease-out" };

/** The last price, flashing the colour of the latest move on every update of its row. */
function LastPrice({ row }: { row: TickerRow }) {
  const flash = useRef<HTMLSpanElement>(null);
  useLayoutEffect(() => {
    if (row.direction) flash.current?.animate(FADE, FADE_TIMING);
  }, [row.version, row.direction]);
  return (
    <td className="num last">
      <span ref={flash} className={`flash flash-${row.direction ?? "up"}`} aria-hidden="true" />
      {fixed(row.last)}
    </td>
  );
}

const Row = memo(function Row({ row, selected, onSelect }: { row: TickerRow; selected: boolean; onSelect: (s: string) => void }) {
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
      <LastPrice row={row} />
      <td className={`num ${tone}`}>{signed(row.change)}</td>
    </tr>
  );
});

/** One row per symbol, updated at most once per frame with its newest tick; only the rows
 * in view whose symbol ticked re-render. */
export function TickerTable({ store, selected, onSelect }: Props) {
  useMarket(store);
  const rows = store.tickers();
  const visible = useVisibleRows<HTMLDivElement>(rows.length, "tbody tr[data-testid]");
  return (
    <section className="panel tickers" aria-labelledby="tickers-title">
      <h2 id="tickers-title">Tickers</h2>
      <div className="scroll" ref={visible.ref}>
        <table className="grid">
          {/* Fixed column widths: a new price never makes the table measure its cells again. */}
          <colgroup>
            <col className="symbol" />
            <col className="price" span={3} />
            <col className="change" />
          </colgroup>
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
            {visible.before > 0 && <tr className="spacer" style={{ height: visible.before }} aria-hidden="true" />}
            {rows.slice(visible.first, visible.end).map((row) => (
              <Row key={row.symbol} row={row} selected={row.symbol === selected} onSelect={onSelect} />
            ))}
            {visible.after > 0 && <tr className="spacer" style={{ height: visible.after }} aria-hidden="true" />}
          </tbody>
        </table>
        {!rows.length && <p className="empty">Waiting for ticks…</p>}
      </div>
    </section>
  );
}
