import { ColorType, LineSeries, createChart, type IChartApi, type ISeriesApi, type UTCTimestamp } from "lightweight-charts";
import { useEffect, useRef, useState } from "react";
import type { PricePoint } from "../market/model";
import type { MarketStore } from "../market/store";

interface Props {
  store: MarketStore;
  symbol: string | null;
}

/** Seconds of history the chart shows once it has that much: the window then moves with the data. */
export const CHART_WINDOW_SECONDS = 300;
const LINE = "#4ea1ff";

const toChart = (p: PricePoint) => ({ time: p.time as UTCTimestamp, value: p.value });

/** Last price of the selected symbol, one point per second, fed straight from the store. */
export function PriceChart({ store, symbol }: Props) {
  const container = useRef<HTMLDivElement>(null);
  const chartRef = useRef<IChartApi | null>(null);
  const series = useRef<ISeriesApi<"Line"> | null>(null);
  const [points, setPoints] = useState(0);

  useEffect(() => {
    if (!container.current) return;
    const chart = createChart(container.current, {
      autoSize: true,
      layout: { background: { type: ColorType.Solid, color: "transparent" }, textColor: "#8b98a9", attributionLogo: false },
      grid: { vertLines: { color: "#1c2430" }, horzLines: { color: "#1c2430" } },
      rightPriceScale: { borderColor: "#263040" },
      // No empty space left or right of the line: the axis is the data's time span.
      timeScale: { borderColor: "#263040", timeVisible: true, secondsVisible: true, rightOffset: 0, fixLeftEdge: true, fixRightEdge: true },
    });
    chartRef.current = chart;
    // The last-price line is drawn muted so the price line itself stays the only bright stroke.
    series.current = chart.addSeries(LineSeries, { color: LINE, lineWidth: 2, priceLineColor: "#56657a" });
    return () => {
      series.current = null;
      chartRef.current = null;
      chart.remove();
    };
  }, []);

  useEffect(() => {
    const line = series.current;
    const chart = chartRef.current;
    if (!line || !chart || !symbol) return;
    // Until a full window has arrived the whole series is fitted to the width; after that
    // each new second shifts the window by one point at the same spacing.
    const follow = (count: number) => {
      if (count <= CHART_WINDOW_SECONDS) chart.timeScale().fitContent();
      setPoints(count);
    };
    const initial = store.points(symbol);
    line.setData(initial.map(toChart));
    follow(initial.length);
    let count = initial.length;
    let drawn = initial.at(-1);
    // Updating only the tail is what keeps the chart cheap at any tick rate, and only when it
    // moved: most frames bring nothing for the charted symbol, and each update redraws it.
    return store.subscribe(() => {
      const all = store.points(symbol);
      const tail = all[all.length - 1];
      if (tail?.time === drawn?.time && tail?.value === drawn?.value) return;
      drawn = tail && { ...tail };
      if (!tail) line.setData([]);
      else line.update(toChart(tail));
      if (all.length !== count) {
        count = all.length;
        follow(count);
      }
    });
  }, [store, symbol]);

  return (
    <section className="panel chart" aria-labelledby="chart-title" data-testid="panel-chart" data-points={points}>
      <h2 id="chart-title">
        {symbol ? `${symbol} last price` : "Price chart"}
        <span className="muted"> · click a ticker to chart it</span>
      </h2>
      <div className="chart-box" ref={container} role="img" aria-label={symbol ? `Price chart of ${symbol}` : "Price chart"} />
      {!symbol && <p className="empty overlay">Waiting for ticks…</p>}
    </section>
  );
}
