import { memo } from "react";
import { clockTime, fixed } from "../format";
import { useMarket } from "../hooks/useMarket";
import { useVisibleRows } from "../hooks/useVisibleRows";
import type { Trade } from "../market/model";
import type { MarketStore } from "../market/store";

/** Rows in the list: a few screens of the tape. Every new trade shifts every row below it, so
 * each row drawn costs layout and paint in every frame with a trade in it: only those in view
 * are drawn. */
export const TAPE_ROWS = 50;

// A trade never changes: a row already drawn is not rendered again when newer ones arrive.
const TradeRow = memo(function TradeRow({ trade }: { trade: Trade }) {
  return (
    <li className={trade.side === "sell" ? "down" : trade.side === "buy" ? "up" : undefined}>
      <span className="muted">{clockTime(trade.at)}</span>
      <span className="sym">{trade.symbol}</span>
      <span>{trade.side ?? ""}</span>
      <span className="num">{fixed(trade.price)}</span>
      <span className="num">{trade.size ?? ""}</span>
    </li>
  );
});

/** The newest trades first; older ones leave the list but stay in the total. */
export function TradesTape({ store }: { store: MarketStore }) {
  useMarket(store);
  const total = store.tradeCount;
  const trades = store.trades().slice(0, TAPE_ROWS);
  const rows = useVisibleRows<HTMLDivElement>(trades.length, "li");
  return (
    <section className="panel tape" aria-labelledby="tape-title">
      <h2 id="tape-title">
        Trades <span className="muted">{total.toLocaleString()} total</span>
      </h2>
      {/* The spacers are the list's padding, inside the scroll box: padding on the scroll box
          itself would be a height its panel cannot shrink below. */}
      <div className="scroll" ref={rows.ref}>
        <ol className="tape-list" data-testid="trades-tape" data-total={total} style={{ paddingTop: rows.before, paddingBottom: rows.after }}>
          {trades.slice(rows.first, rows.end).map((trade) => (
            <TradeRow key={trade.key} trade={trade} />
          ))}
        </ol>
      </div>
    </section>
  );
}
