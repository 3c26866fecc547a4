import assert from "node:assert/strict";
import { test } from "node:test";
import { byteTable, cellsFor, paintCell, parseChannels, sharedRange, stepFor, storageNote, tileLut, visOrder, type LayoutInfo } from "../src/views/fmaps/math";

/** A grid of 2 rows (images) × 3 columns of h × w tiles whose code is 100*row + 10*column + pixel. */
function grid(h: number, w: number): { data: Uint8Array; width: number } {
  const width = 3 * w;
  const data = new Uint8Array(2 * h * width);
  for (let r = 0; r < 2; r++)
    for (let c = 0; c < 3; c++)
      for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data[(r * h + y) * width + c * w + x] = 100 * r + 10 * c + y * w + x;
  return { data, width };
}

const identity = new Uint32Array(256).map((_, i) => i);
const lutOf = () => identity;

test("spatial cells are one per shown column, painted from their tile", () => {
  const info: LayoutInfo = { layout: "spatial", height: 2, width: 2, gridSide: 0, classTokens: 0 };
  const cells = cellsFor(info, [2, 0], "tokens");
  assert.deepEqual(cells, [
    { kind: "tile", column: 2, width: 2, height: 2 },
    { kind: "tile", column: 0, width: 2, height: 2 },
  ]);
  const { data, width } = grid(2, 2);
  const out = new Uint32Array(4);
  paintCell(cells[0], 1, data, width, 2, 2, lutOf, out);
  assert.deepEqual([...out], [120, 121, 122, 123]);
});

test("sequence layers stack the columns' rows: channel × position", () => {
  const info: LayoutInfo = { layout: "sequence", height: 1, width: 4, gridSide: 0, classTokens: 0 };
  const [cell] = cellsFor(info, [1, 2], "tokens");
  assert.deepEqual(cell, { kind: "rows", columns: [1, 2], width: 4, height: 2 });
  const { data, width } = grid(1, 4);
  const out = new Uint32Array(8);
  paintCell(cell, 0, data, width, 1, 4, lutOf, out);
  assert.deepEqual([...out], [10, 11, 12, 13, 20, 21, 22, 23]);
});

test("token layers: token × channel map, or a square grid skipping the class token", () => {
  const info: LayoutInfo = { layout: "tokens", height: 1, width: 5, gridSide: 2, classTokens: 1 };
  const [map] = cellsFor(info, [0, 2], "tokens");
  assert.deepEqual(map, { kind: "tokens", columns: [0, 2], width: 2, height: 5 });
  const { data, width } = grid(1, 5);
  const out = new Uint32Array(10);
  paintCell(map, 1, data, width, 1, 5, lutOf, out);
  assert.deepEqual([...out], [100, 120, 101, 121, 102, 122, 103, 123, 104, 124]);
  const cells = cellsFor(info, [0, 2], "grid");
  assert.deepEqual(cells[1], { kind: "grid", column: 2, side: 2, offset: 1, width: 2, height: 2 });
  const sq = new Uint32Array(4);
  paintCell(cells[1], 0, data, width, 1, 5, lutOf, sq);
  assert.deepEqual([...sq], [21, 22, 23, 24]);
  // Without a square grid the grid option falls back to the token map.
  assert.equal(cellsFor({ ...info, gridSide: 0 }, [0], "grid")[0].kind, "tokens");
});

test("vector layers are one strip whatever the columns", () => {
  const info: LayoutInfo = { layout: "vector", height: 1, width: 7, gridSide: 0, classTokens: 0 };
  assert.deepEqual(cellsFor(info, [], "tokens"), [{ kind: "tile", column: 0, width: 7, height: 1 }]);
});

test("shared scale: codes placed on the grid's range; per map: codes as they are", () => {
  const range = sharedRange(
    [
      [0, -2, 5],
      [1, null, 0],
    ],
    [
      [2, 2, 9],
      [3, 4, 1],
    ],
    [0, 1],
  );
  assert.deepEqual(range, [-2, 4]); // column 2 is not shown
  const lut = tileLut(identity, 0, 2, range);
  assert.equal(lut[0], Math.round((2 / 6) * 255)); // value 0 on [-2, 4]
  assert.equal(lut[255], Math.round((4 / 6) * 255)); // value 2
  assert.deepEqual([...tileLut(identity, 0, 2, null)], [...identity]);
  assert.deepEqual([...tileLut(identity, null, 2, range)], [...identity]);
  assert.equal(sharedRange(null, null, [0]), null);
  assert.equal(byteTable(0, 2, [0, 4])[255], 128);
  assert.equal(byteTable(0, 2, null)[77], 77);
});

test("channel picker: indices and ranges of recorded channels, errors naming the recorded ones", () => {
  const channels = [12, 3, 40, 7];
  assert.deepEqual(parseChannels("", channels), { columns: [0, 1, 2, 3], error: null });
  assert.deepEqual(parseChannels("7, 12", channels), { columns: [3, 0], error: null });
  assert.deepEqual(parseChannels("3-7 3", channels).columns, [1, 3]);
  const missing = parseChannels("5, 12", channels);
  assert.deepEqual(missing.columns, [0, 1, 2, 3]);
  assert.match(missing.error ?? "", /channel 5 was not recorded; recorded: 12, 3, 40, 7 \(record others with maps_channels=\)/);
  assert.match(parseChannels("x1", channels).error ?? "", /is not a channel index/);
  assert.match(parseChannels("9-3", channels).error ?? "", /bad range/);
});

test("stepFor shows the last recorded step at or before the wanted one", () => {
  assert.equal(stepFor([0, 100, 200], null), 200);
  assert.equal(stepFor([0, 100, 200], 150), 100);
  assert.equal(stepFor([100, 200], 50), 100);
  assert.equal(stepFor([], 5), null);
});

test("the storage note says how tiles were pooled and quantised, nothing for full-resolution 8-bit maps", () => {
  const spatial: LayoutInfo = { layout: "spatial", height: 28, width: 28, gridSide: 0, classTokens: 0 };
  assert.deepEqual(storageNote(spatial), { text: "", title: "" });
  assert.equal(storageNote({ ...spatial, poolFactor: 1, sourceHeight: 28, sourceWidth: 28, bits: 8 }).text, "");
  const pooled = storageNote({ ...spatial, poolFactor: 2, sourceHeight: 56, sourceWidth: 56, bits: 6 });
  assert.equal(pooled.text, "pooled 2× from 56×56 · 6-bit");
  assert.match(pooled.title, /block of 2×2 values/);
  assert.match(pooled.title, /52 levels .* \(max − min\) \/ 102/);
  const tokens: LayoutInfo = { layout: "tokens", height: 1, width: 1 + 32 * 32, gridSide: 32, classTokens: 1 };
  assert.equal(storageNote({ ...tokens, poolFactor: 2, sourceHeight: 1, sourceWidth: 1 + 64 * 64, bits: 8 }).text, "pooled 2× from a 64×64 token grid");
  const row: LayoutInfo = { layout: "sequence", height: 1, width: 1000, gridSide: 0, classTokens: 0 };
  const note = storageNote({ ...row, poolFactor: 3, sourceHeight: 1, sourceWidth: 3000, bits: 8 });
  assert.equal(note.text, "pooled 3× from length 3000");
  assert.match(note.title, /block of 3 values/);
});

test("feature visualisations follow the feature maps' column order, the others after as recorded", () => {
  // Recorded: channels 7, 2, 9, 4; the maps show 9, 5, 7 (5 has no visualisation).
  assert.deepEqual(visOrder([7, 2, 9, 4], [9, 5, 7]), [2, 0, 1, 3]);
  assert.deepEqual(visOrder([7, 2, 9], []), [0, 1, 2]);
  assert.deepEqual(visOrder([], [1, 2]), []);
  assert.deepEqual(visOrder([3, 1], [1, 3, 1]), [1, 0]);
});
