"""What the dashboard shows, measured in the page with the DOM and the chart's pixels.

Each constant is a JavaScript function for ``page.evaluate``.
"""

from __future__ import annotations

# Every element of every panel (and the top bar) must lie inside what its clipping
# ancestors show: nothing cut off at the right, no panel past the viewport, no text cut
# inside its own box. The one exception is a list that scrolls vertically on purpose: rows
# below its fold are there to be scrolled to. Returns the problems found, [] when none.
CLIPPED = """() => {
  const problems = [];
  const vw = document.documentElement.clientWidth, vh = document.documentElement.clientHeight;
  if (document.documentElement.scrollWidth > vw + 1) {
    problems.push(`page scrolls sideways: ${document.documentElement.scrollWidth} > ${vw}`);
  }
  const name = (el) => `${el.tagName.toLowerCase()}.${String(el.className).split(" ").join(".")}`
    + ` "${(el.textContent || "").trim().slice(0, 30)}"`;
  for (const panel of document.querySelectorAll(".panel, .topbar")) {
    const p = panel.getBoundingClientRect();
    if (p.left < -1 || p.top < -1 || p.right > vw + 1 || p.bottom > vh + 1) {
      problems.push(`not whole on screen: ${name(panel)} ${[p.left, p.top, p.right, p.bottom]}`);
    }
    for (const el of [panel, ...panel.querySelectorAll("*")]) {
      const r = el.getBoundingClientRect();
      const style = getComputedStyle(el);
      if ((r.width === 0 && r.height === 0) || style.display === "none" || style.visibility === "hidden") continue;
      const clipsOwn = style.overflowX !== "visible" || style.textOverflow === "ellipsis";
      if (clipsOwn && el.tagName !== "CANVAS" && el.scrollWidth > el.clientWidth + 1) {
        problems.push(`cut off inside: ${name(el)} ${el.scrollWidth} > ${el.clientWidth}`);
      }
      let scrolled = false;
      for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
        const s = getComputedStyle(a);
        const ar = a.getBoundingClientRect();
        if (s.overflowX !== "visible" && (r.left < ar.left - 1 || r.right > ar.right + 1)) {
          problems.push(`clipped sideways: ${name(el)} by ${name(a)}`);
          break;
        }
        if (s.overflowY !== "visible" && !scrolled && (r.top < ar.top - 1 || r.bottom > ar.bottom + 1)) {
          if (s.overflowY === "auto" || s.overflowY === "scroll") scrolled = true;
          else { problems.push(`clipped vertically: ${name(el)} by ${name(a)}`); break; }
        }
        if (a === panel) break;
      }
    }
  }
  return problems;
}"""

# The price line is the only stroke in the line colour (#4ea1ff) on the chart's pane, its
# largest canvas: the leftmost and rightmost pixel columns it touches, and their span as a
# fraction of the pane's width.
CHART_SPAN = """() => {
  const canvases = [...document.querySelectorAll("[data-testid=panel-chart] canvas")];
  const pane = canvases.reduce((a, b) => (b.width * b.height > a.width * a.height ? b : a));
  const { width, height } = pane;
  const px = pane.getContext("2d").getImageData(0, 0, width, height).data;
  const near = (i) => Math.abs(px[i] - 78) < 24 && Math.abs(px[i + 1] - 161) < 24 && Math.abs(px[i + 2] - 255) < 24
    && px[i + 3] > 128;
  let left = -1, right = -1;
  for (let x = 0; x < width; x++) {
    for (let y = 0; y < height; y++) {
      if (near((y * width + x) * 4)) { if (left < 0) left = x; right = x; break; }
    }
  }
  return { width, left, right, span: left < 0 ? 0 : (right - left + 1) / width };
}"""
