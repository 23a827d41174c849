import { useSyncExternalStore } from "react";
import type { MarketStore } from "../market/store";

/** Re-renders the caller whenever the store applied a frame; returns the store's version. */
export function useMarket(store: MarketStore): number {
  return useSyncExternalStore(store.subscribe, store.getVersion);
}
