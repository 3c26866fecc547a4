import assert from "node:assert/strict";
import { test } from "node:test";
import {
  aggregateRow,
  autoDepth,
  buildLayerTree,
  entryOf,
  foldedGroupOf,
  groupedMatrix,
  initialFold,
  matchesFilter,
  toggleGroup,
  treeDepth,
  UNFOLDED,
  visibleEntries,
  type Entry,
} from "../src/lib/layer_groups";
import type { GradientsResponse } from "../src/views/grads/api";
import { groupAlerts, groupedFlowColumns, type GradAlert } from "../src/views/grads/math";

const NESTED = ["stem", "blocks.0.fc", "blocks.0.act", "blocks.1.fc", "blocks.1.act", "head"];
const label = (names: readonly string[], e: Entry) => (e.kind === "layer" ? names[e.layer] : (e.open ? "▼" : "▶") + e.node.key);

test("layers group by module prefix, folding by depth with per-group overrides", () => {
  const tree = buildLayerTree(NESTED);
  assert.equal(treeDepth(tree), 2);
  const show = (fold = initialFold(), depth?: number) => visibleEntries(tree, fold, {}, depth).map((e) => label(NESTED, e));
  assert.deepEqual(show(initialFold(), 1), ["stem", "▶blocks.*", "head"]);
  assert.deepEqual(show(initialFold(), 2), ["stem", "▼blocks.*", "▶blocks.0.*", "▶blocks.1.*", "head"]);
  assert.deepEqual(show(initialFold(), UNFOLDED), ["stem", "▼blocks.*", "▼blocks.0.*", "blocks.0.fc", "blocks.0.act", "▼blocks.1.*", "blocks.1.fc", "blocks.1.act", "head"]);
  const opened = toggleGroup({ ...initialFold(), depth: 1 }, "blocks.*", true);
  assert.deepEqual(show(opened), ["stem", "▼blocks.*", "▶blocks.0.*", "▶blocks.1.*", "head"]);
  // Without headers (the flow chart's bars), an unfolded group is only its contents.
  const bars = visibleEntries(tree, { ...initialFold(), depth: 2 }, { headers: false }).map((e) => label(NESTED, e));
  assert.deepEqual(bars, ["stem", "▶blocks.0.*", "▶blocks.1.*", "head"]);
});

test("few rows stay unfolded; many fold to the deepest depth with at most the limit", () => {
  assert.equal(autoDepth(buildLayerTree(NESTED)), UNFOLDED);
  const many = Array.from({ length: 40 }, (_, b) => [`blocks.${b}.attn`, `blocks.${b}.mlp`]).flat();
  const tree = buildLayerTree(many);
  // blocks.* has 40 children: cut into ranges of 5 (8 groups), then blocks.b.* (2 layers each).
  assert.equal(autoDepth(tree), 3); // 1 + 8 + 40 rows at depth 3 (≤ 60); unfolding everything is 129
  assert.equal(autoDepth(tree, () => true, 5), 1);
});

test("a flat Sequential of 300 layers is cut into ranges of 20", () => {
  const names = Array.from({ length: 300 }, (_, i) => String(i));
  const tree = buildLayerTree(names);
  const entries = visibleEntries(tree, initialFold());
  assert.equal(entries.length, 15);
  assert.equal(entries[1].kind === "group" && entries[1].node.key, "[20 … 39]");
  assert.equal(entries[1].kind === "group" && entries[1].members.length, 20);
  // The filter keeps matching layers (name or type); a group left with one layer shows as that layer.
  const keep = (i: number) => matchesFilter("29", names[i], "Linear");
  const filtered = visibleEntries(tree, initialFold(), { keep }).map((e) => label(names, e));
  assert.deepEqual(filtered.slice(0, 4), ["29", "129", "229", "▼[280 … 299]"]);
  assert.equal(matchesFilter("TANH", "x", "Tanh"), true);
  assert.equal(matchesFilter("relu", "x", "Tanh"), false);
  assert.equal(entryOf(entries, 25), 1);
  assert.equal(foldedGroupOf(entries, names, "25"), "[20 … 39]");
  assert.equal(foldedGroupOf(visibleEntries(tree, { ...initialFold(), depth: UNFOLDED }), names, "25"), null);
  assert.equal(foldedGroupOf(entries, names, null), null);
});

test("a folded group's row aggregates its layers per step (max, mean, min; missing values skipped)", () => {
  const rows = [[1, null, 3], [5, 2, null], [null, null, null]];
  assert.deepEqual(aggregateRow(rows, [0, 1, 2], 3, "max"), [5, 2, 3]);
  assert.deepEqual(aggregateRow(rows, [0, 1, 2], 3, "mean"), [3, 2, 3]);
  assert.deepEqual(aggregateRow(rows, [0, 1], 3, "min"), [1, 2, 3]);
  assert.deepEqual(aggregateRow(rows, [2], 3, "max"), [null, null, null]);
  const names = ["a.x", "a.y", "b"];
  const tree = buildLayerTree(names);
  const m = groupedMatrix(names, rows, 3, visibleEntries(tree, { ...initialFold(), depth: 1 }), "max");
  assert.deepEqual(m.layers, ["a.*", "b"]);
  assert.deepEqual(m.values, [[5, 2, 3], [null, null, null]]);
  assert.deepEqual(m.meta.map((r) => [r.kind, r.count]), [["group", 2], ["layer", 1]]);
});

test("gradient alerts and bars of a folded group come together", () => {
  const names = ["a.x", "a.y", "b"];
  const data: GradientsResponse = {
    run: "r",
    fields: ["gradMeanAbs", "gradMaxAbs"],
    layers: names.map((name, order) => ({ name, moduleType: "Linear", shape: null, order })),
    steps: [0],
    values: { gradMeanAbs: [[1], [3], [0]], gradMaxAbs: [[4], [8], [2]] },
  };
  const tree = buildLayerTree(names);
  const folded = visibleEntries(tree, { ...initialFold(), depth: 1 }, { headers: false });
  const cols = groupedFlowColumns(data, 0, folded);
  assert.deepEqual(cols.layers, ["a.*", "b"]);
  assert.deepEqual(cols.mean, [2, null]); // 0 has no place on a log scale
  assert.deepEqual(cols.max, [8, 2]);
  assert.deepEqual(cols.groups, [true, false]);
  const alert = (row: number): GradAlert => ({ kind: "vanishing", layer: names[row], row, firstStep: row, lastStep: 9, count: 1, value: 1, median: 2 });
  const lines = groupAlerts([alert(0), alert(1), alert(2)], visibleEntries(tree, { ...initialFold(), depth: 1 }));
  assert.deepEqual(lines.map((l) => [l.group?.key ?? null, l.items.length]), [["a.*", 2], [null, 1]]);
  const open = groupAlerts([alert(0), alert(2)], visibleEntries(tree, { ...initialFold(), depth: UNFOLDED }));
  assert.deepEqual(open.map((l) => l.group), [null, null]);
});
