import assert from "node:assert/strict";
import { test } from "node:test";
import type { HistogramsResponse, ModelRow, UnitsResponse } from "../src/views/model/api";
import {
  binLeftEdges,
  binRange,
  cadence,
  findUnitAlerts,
  formatCount,
  formatKernel,
  formatMultAdds,
  formatOutput,
  hasChildren,
  histogramCells,
  parentIndices,
  rowsFromLayers,
  totalsLines,
  visibleRows,
} from "../src/views/model/math";

function row(name: string, type = "M"): ModelRow {
  return { name, type, depth: name ? name.split(".").length : 0, params: 0, trainableParams: 0, ownParams: 0, watched: false, output: null, calls: 0 };
}

const ROWS = ["", "features", "features.0", "features.0.conv", "features.1", "head", "head.fc"].map((n) => row(n, n.endsWith("conv") ? "Conv2d" : "M"));
const names = (idx: number[]) => idx.map((i) => ROWS[i].name);

test("parents and children follow named_modules() order", () => {
  assert.deepEqual(parentIndices(ROWS), [-1, 0, 1, 2, 1, 0, 5]);
  assert.equal(hasChildren(ROWS, 1), true);
  assert.equal(hasChildren(ROWS, 4), false);
  assert.equal(hasChildren(ROWS, 6), false);
});

test("rows fold by depth, with per-row overrides", () => {
  const none = new Map<string, boolean>();
  assert.deepEqual(names(visibleRows(ROWS, { depth: 1, open: none, filter: "" })), ["", "features", "head"]);
  assert.deepEqual(names(visibleRows(ROWS, { depth: 2, open: none, filter: "" })), ["", "features", "features.0", "features.1", "head", "head.fc"]);
  assert.equal(visibleRows(ROWS, { depth: 9, open: none, filter: "" }).length, ROWS.length);
  const folded = new Map([["features", false]]);
  assert.deepEqual(names(visibleRows(ROWS, { depth: 9, open: folded, filter: "" })), ["", "features", "head", "head.fc"]);
  const opened = new Map([["head", true]]);
  assert.deepEqual(names(visibleRows(ROWS, { depth: 1, open: opened, filter: "" })), ["", "features", "head", "head.fc"]);
});

test("the filter keeps matches and their ancestors, whatever the folding", () => {
  const none = new Map<string, boolean>();
  assert.deepEqual(names(visibleRows(ROWS, { depth: 0, open: none, filter: "conv2D" })), ["", "features", "features.0", "features.0.conv"]);
  assert.deepEqual(names(visibleRows(ROWS, { depth: 0, open: none, filter: "nothing" })), []);
});

test("outputs: shapes, tuples, dicts, type names, missing", () => {
  assert.equal(formatOutput([8, 3]), "[8, 3]");
  assert.equal(formatOutput([[8, 3], null]), "([8, 3], –)");
  assert.equal(formatOutput({ logits: [8, 3], "<b>": "str" }), "{logits: [8, 3], <b>: str}");
  assert.equal(formatOutput(null), "–");
});

test("unit alerts: one per (layer, kind) with the first step above the threshold", () => {
  const data: UnitsResponse = {
    run: "r",
    layers: [
      { name: "relu", moduleType: "ReLU", order: 1, bounded: false },
      { name: "sig", moduleType: "Sigmoid", order: 2, bounded: true },
    ],
    steps: [0, 10, 20],
    dead: [[0, 0.25, 0.5], [null, null, null]],
    saturated: [[null, null, null], [0.1, 0, null]],
    channels: [4, 10],
  };
  const alerts = findUnitAlerts(data);
  assert.deepEqual(
    alerts.map((a) => [a.kind, a.layer, a.firstStep, a.last, a.max]),
    [
      ["dead", "relu", 10, 0.5, 0.5],
      ["saturated", "sig", 0, null, 0.1],
    ],
  );
  assert.equal(findUnitAlerts(data, 0.3).length, 1);
  // Thinned columns show their last step: the server's exact first steps win.
  const thinned = { ...data, deadSince: [7, null], saturatedSince: [null, 3] };
  assert.deepEqual(
    findUnitAlerts(thinned).map((a) => [a.kind, a.firstStep]),
    [
      ["dead", 7],
      ["saturated", 3],
    ],
  );
});

test("histogram cells: highest bin on top, each step scaled to its fullest bin", () => {
  const data: HistogramsResponse = {
    run: "r", layer: "l", moduleType: "ReLU", bins: 2, steps: [0, 5],
    low: [0, 0], high: [4, 4], underflow: [0, 0], overflow: [0, 1],
    counts: [[4, 1], [0, 0]],
  };
  const cells = histogramCells(data);
  // row 0 = bin 1 (upper), row 1 = bin 0; columns = steps
  assert.deepEqual(Array.from(cells), [Math.round((Math.log1p(1) / Math.log1p(4)) * 255), 0, 255, 0]);
  assert.deepEqual(binRange(data, 0, 1), [2, 4]);
});

test("without a model table, the recorded layers make a flat table in model order", () => {
  const rows = rowsFromLayers([
    { name: "b", moduleType: "ReLU", shape: [2, 3], order: 2 },
    { name: "a.x", moduleType: "Conv2d", shape: null, order: 1 },
  ]);
  assert.deepEqual(rows.map((r) => [r.name, r.type, r.depth, r.output, r.watched]), [
    ["a.x", "Conv2d", 0, null, true],
    ["b", "ReLU", 0, [2, 3], true],
  ]);
  assert.equal(formatCount(rows[0].params), "–");
  assert.equal(formatCount(1234567), "1,234,567");
  assert.deepEqual(visibleRows(rows, { depth: 0, open: new Map(), filter: "" }), [0, 1]);
});

test("cadence names the smallest gap between recorded steps", () => {
  assert.equal(cadence([0, 100, 200, 250]), " · every 50 steps");
  assert.equal(cadence([0, 100]), " · every 100 steps");
  assert.equal(cadence([40]), "");
  assert.equal(cadence([]), "");
});

test("mult-adds and kernel shapes as torchinfo writes them; nothing for tables that predate them", () => {
  assert.equal(formatMultAdds(1_234_567), "1.23 M");
  assert.equal(formatMultAdds(2_500_000_000), "2.50 G");
  assert.equal(formatMultAdds(4_096), "4.10 K");
  assert.equal(formatMultAdds(512), "512");
  assert.equal(formatMultAdds(0), "–");
  assert.equal(formatMultAdds(undefined), "");
  assert.equal(formatKernel([3, 3]), "[3, 3]");
  assert.equal(formatKernel(null), "");
  assert.equal(formatKernel(undefined), "");
});

test("the totals block: torchinfo's lines, sizes in MB, mult-adds in M or G; none without totals", () => {
  const lines = totalsLines({
    totalParams: 23_971, trainableParams: 23_000, nonTrainableParams: 971, totalMultAdds: 1_810_000_000,
    inputSizeBytes: 602_112, forwardBackwardSizeBytes: 39_750_000, paramsSizeBytes: 95_884, estimatedTotalSizeBytes: 40_447_996,
  });
  assert.deepEqual(lines.map((l) => `${l.label}: ${l.value}`), [
    "Total params: 23,971",
    "Trainable params: 23,000",
    "Non-trainable params: 971",
    "Total mult-adds (G): 1.81",
    "Input size (MB): 0.60",
    "Forward/backward pass size (MB): 39.75",
    "Params size (MB): 0.10",
    "Estimated total size (MB): 40.45",
  ]);
  assert.equal(totalsLines({ totalParams: 1 } as never).length, 0);
  assert.deepEqual(totalsLines(undefined), []);
  assert.equal(totalsLines({ totalParams: 1, trainableParams: 1, nonTrainableParams: 0, totalMultAdds: 50_000, inputSizeBytes: 1, forwardBackwardSizeBytes: 1, paramsSizeBytes: 4, estimatedTotalSizeBytes: 6 })[3].label, "Total mult-adds (M)");
});

test("binLeftEdges: equal-width left edges of a per-step symmetric range, bin indices when unknown", () => {
  assert.deepEqual(binLeftEdges(-0.5, 0.5, 4), [-0.5, -0.25, 0, 0.25]);
  assert.deepEqual(binLeftEdges(null, 1, 3), [0, 1, 2]);
  assert.deepEqual(binLeftEdges(1, 1, 2), [0, 1]);
});
