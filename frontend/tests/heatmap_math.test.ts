import assert from "node:assert/strict";
import { test } from "node:test";
import { colormapLUT, packRGBA } from "../src/lib/colormaps";
import { cellAt, colorize, normalize, tickColumns } from "../src/lib/heatmap_math";

test("global normalisation maps min→0 and max→255, nulls invalid", () => {
  const n = normalize([[0, 5, null], [10, Number.NaN, 2.5]], 3, "global");
  assert.equal(n.min, 0);
  assert.equal(n.max, 10);
  assert.deepEqual(Array.from(n.valid), [1, 1, 0, 1, 0, 1]);
  assert.deepEqual(Array.from(n.index), [0, 128, 0, 255, 0, 64]);
});

test("row normalisation scales each layer to its own range; constant rows sit mid-scale", () => {
  const n = normalize([[1, 2, 3], [100, 300, 200], [7, 7, 7]], 3, "row");
  assert.deepEqual(Array.from(n.index.slice(0, 3)), [0, 128, 255]);
  assert.deepEqual(Array.from(n.index.slice(3, 6)), [0, 255, 128]);
  assert.deepEqual(Array.from(n.index.slice(6, 9)), [128, 128, 128]);
  assert.equal(n.rowMin[1], 100);
  assert.equal(n.rowMax[1], 300);
});

test("an all-null heatmap has NaN range and no valid cells", () => {
  const n = normalize([[null, null]], 2, "global");
  assert.ok(Number.isNaN(n.min) && Number.isNaN(n.max));
  assert.deepEqual(Array.from(n.valid), [0, 0]);
});

test("colorize writes LUT colours and transparent pixels for missing cells", () => {
  const n = normalize([[0, null, 1]], 3, "global");
  const lut = colormapLUT("viridis");
  const out = new Uint32Array(3);
  colorize(n, lut, out);
  assert.equal(out[0], lut[0]);
  assert.equal(out[1], packRGBA(0, 0, 0, 0));
  assert.equal(out[2], lut[255]);
});

test("cellAt maps pointer offsets to cells and rejects points outside", () => {
  assert.deepEqual(cellAt(0, 0, 100, 20, 3, 10), { row: 0, col: 0 });
  assert.deepEqual(cellAt(99.9, 59.9, 100, 20, 3, 10), { row: 2, col: 9 });
  assert.equal(cellAt(100, 10, 100, 20, 3, 10), null);
  assert.equal(cellAt(10, 60, 100, 20, 3, 10), null);
  assert.equal(cellAt(-1, 0, 100, 20, 3, 10), null);
});

test("step ticks land on nice multiples and stay apart", () => {
  const steps = Array.from({ length: 60 }, (_, i) => i * 10);
  const cols = tickColumns(steps, 960);
  const labels = cols.map((j) => steps[j]);
  assert.equal(labels[0], 0);
  const incr = labels[1] - labels[0];
  assert.ok([10, 20, 25, 50, 100].includes(incr), `increment ${incr}`);
  for (let k = 1; k < labels.length; k++) assert.equal(labels[k] - labels[k - 1], incr);
  assert.ok((cols[1] - cols[0]) * (960 / 60) >= 48);
  assert.deepEqual(tickColumns([5], 500), [0]);
  assert.deepEqual(tickColumns([], 500), []);
});
