import { useSyncExternalStore } from "react";
import type { MarketStore } from "../market/store";

/** Re-renders the caller whenever the store applied a frame; returns the store's version.
 * Only the panels that draw market data call it, so a frame re-renders them and nothing else. */
export function useMarket(store: MarketStore): number {
  return useSyncExternalStore(store.subscribe, store.getVersion, store.getVersion);
}

/** The first symbol to arrive (null before any): its caller re-renders when it changes, not every frame. */
export function useFirstSymbol(store: MarketStore): string | null {
  const first = () => store.tickers()[0]?.symbol ?? null;
  return useSyncExternalStore(store.subscribe, first, first);
}
