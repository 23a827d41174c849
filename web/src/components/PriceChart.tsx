import { ColorType, LineSeries, createChart, type ISeriesApi, type UTCTimestamp } from "lightweight-charts";
import { useEffect, useRef } from "react";
import type { PricePoint } from "../market/model";
import type { MarketStore } from "../market/store";

interface Props {
  store: MarketStore;
  symbol: string | null;
}

const toChart = (p: PricePoint) => ({ time: p.time as UTCTimestamp, value: p.value });

/** Last price of the selected symbol, one point per second, fed straight from the store. */
export function PriceChart({ store, symbol }: Props) {
  const container = useRef<HTMLDivElement>(null);
  const series = useRef<ISeriesApi<"Line"> | null>(null);

  useEffect(() => {
    if (!container.current) return;
    const chart = createChart(container.current, {
      autoSize: true,
      layout: { background: { type: ColorType.Solid, color: "transparent" }, textColor: "#8b98a9", attributionLogo: false },
      grid: { vertLines: { color: "#1c2430" }, horzLines: { color: "#1c2430" } },
      rightPriceScale: { borderColor: "#263040" },
      timeScale: { borderColor: "#263040", timeVisible: true, secondsVisible: true },
    });
    series.current = chart.addSeries(LineSeries, { color: "#4ea1ff", lineWidth: 2 });
    return () => {
      series.current = null;
      chart.remove();
    };
  }, []);

  useEffect(() => {
    const line = series.current;
    if (!line || !symbol) return;
    line.setData(store.points(symbol).map(toChart));
    // Updating only the tail is what keeps the chart cheap at any tick rate.
    return store.subscribe(() => {
      const points = store.points(symbol);
      const tail = points[points.length - 1];
      if (!tail) line.setData([]);
      else line.update(toChart(tail));
    });
  }, [store, symbol]);

  return (
    <section className="panel chart" aria-labelledby="chart-title">
      <h2 id="chart-title">{symbol ? `${symbol} last price` : "Price chart"}</h2>
      <div className="chart-box" ref={container} role="img" aria-label={symbol ? `Price chart of ${symbol}` : "Price chart"} />
      {!symbol && <p className="empty overlay">Select a ticker</p>}
    </section>
  );
}
