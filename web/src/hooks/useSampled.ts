import { useEffect, useRef, useState } from "react";

/**
 * The last `capacity` readings of `read()`, one every `intervalMs`: a fixed-size history for
 * a sparkline, sampled on a timer so its time axis is even whatever the message rate.
 */
export function useSampled<T>(read: () => T, intervalMs: number, capacity: number): readonly T[] {
  const reader = useRef(read);
  reader.current = read;
  const [samples, setSamples] = useState<readonly T[]>([]);
  useEffect(() => {
    const timer = setInterval(() => setSamples((s) => [...s.slice(-(capacity - 1)), reader.current()]), intervalMs);
    return () => clearInterval(timer);
  }, [intervalMs, capacity]);
  return samples;
}
