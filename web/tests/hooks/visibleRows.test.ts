import { describe, expect, it } from "vitest";
import { visibleRange } from "../../src/hooks/useVisibleRows";

describe("visibleRange", () => {
  it("draws every row until one has been measured", () => {
    expect(visibleRange(50, 0, 0, 0)).toEqual({ first: 0, end: 50, before: 0, after: 0 });
  });

  it("draws the rows in view and one more at each end, the rest as spacers of the same height", () => {
    // 10 px rows, a 35 px view scrolled by 42 px: rows 4..7 are in view.
    const range = visibleRange(50, 10, 42, 35);
    expect(range).toEqual({ first: 3, end: 9, before: 30, after: 410 });
    expect(range.before + (range.end - range.first) * 10 + range.after).toBe(500);
  });

  it("stays within the list at both ends and when it is shorter than the view", () => {
    expect(visibleRange(50, 10, 0, 35)).toMatchObject({ first: 0, end: 5, before: 0 });
    expect(visibleRange(50, 10, 470, 35)).toMatchObject({ first: 46, end: 50, after: 0 });
    expect(visibleRange(3, 10, 0, 100)).toEqual({ first: 0, end: 3, before: 0, after: 0 });
    expect(visibleRange(3, 10, 200, 100)).toEqual({ first: 3, end: 3, before: 30, after: 0 });
  });
});
