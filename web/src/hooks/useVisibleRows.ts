import { useLayoutEffect, useRef, useState, type RefObject } from "react";

export interface VisibleRows<E extends HTMLElement> {
  /** The scroll box holding the rows. */
  ref: RefObject<E | null>;
  /** Rows [first, end) are drawn; the others are spacers of `before` and `after` px. */
  first: number;
  end: number;
  before: number;
  after: number;
}

/** The rows of a list in a scroll box that lie in its view, one more at each end. Rows out of
 * view cost layout and DOM updates in every frame they change without being seen; drawn only
 * when scrolled to, they cost nothing until then. All rows are drawn until one has been
 * measured (`rowSelector` finds it): rows are assumed to be of equal height. */
export function useVisibleRows<E extends HTMLElement>(count: number, rowSelector: string): VisibleRows<E> {
  const ref = useRef<E>(null);
  const [rowPx, setRowPx] = useState(0);
  const [view, setView] = useState({ top: 0, height: 0 });

  useLayoutEffect(() => {
    const box = ref.current;
    if (!box) return;
    const read = () =>
      setView((v) => (v.top === box.scrollTop && v.height === box.clientHeight ? v : { top: box.scrollTop, height: box.clientHeight }));
    read();
    box.addEventListener("scroll", read, { passive: true });
    const resized = new ResizeObserver(read);
    resized.observe(box);
    return () => {
      box.removeEventListener("scroll", read);
      resized.disconnect();
    };
  }, []);

  // Reads the DOM only until a row height is known, not in every frame.
  useLayoutEffect(() => {
    if (rowPx) return;
    const height = ref.current?.querySelector(rowSelector)?.getBoundingClientRect().height;
    if (height) setRowPx(height);
  });

  return { ref, ...visibleRange(count, rowPx, view.top, view.height) };
}

/** Rows of `rowPx` (0: not measured yet, so all) in a view `height` px tall scrolled by `top`. */
export function visibleRange(count: number, rowPx: number, top: number, height: number): Omit<VisibleRows<HTMLElement>, "ref"> {
  if (!rowPx) return { first: 0, end: count, before: 0, after: 0 };
  const first = Math.min(count, Math.max(0, Math.floor(top / rowPx) - 1));
  const end = Math.max(first, Math.min(count, Math.ceil((top + height) / rowPx) + 1));
  return { first, end, before: first * rowPx, after: (count - end) * rowPx };
}
