import assert from "node:assert/strict";
import { test } from "node:test";
import { colormapRGB, packRGBA } from "../src/lib/colormaps";
import { LruCache } from "../src/lib/lru";
import { extractChannel, imageMaxima, spriteCount, spriteOffset, spriteRect } from "../src/lib/sprite_math";
import { stepAtOrBefore, stepIndex, unionSteps } from "../src/lib/steps";
import { buildFrameLut, colorizeMap, colorizeResampled, resampleAxis, normalizationAffine, prefetchOrder, prefetchRadius, PREFETCH_BYTES } from "../src/views/cam/overlay_math";

const rgbAt = (rgb: Uint8Array, i: number) => [rgb[i * 3], rgb[i * 3 + 1], rgb[i * 3 + 2]] as const;

test("frame LUT: below threshold transparent, else the colormap colour with the opacity as alpha", () => {
  const rgb = colormapRGB("jet");
  const lut = buildFrameLut(rgb, 0.5, 0.5, 1, 0, new Uint32Array(256));
  assert.equal(lut[0], 0);
  assert.equal(lut[127], 0, "127 < 0.5 * 255");
  assert.equal(lut[128], packRGBA(...rgbAt(rgb, 128), 128));
  assert.equal(lut[255], packRGBA(...rgbAt(rgb, 255), 128));
  // Threshold 0 colours every value, including 0; opacity 1 is opaque; opacity 0 hides everything.
  const all = buildFrameLut(rgb, 1, 0, 1, 0, new Uint32Array(256));
  assert.equal(all[0], packRGBA(...rgbAt(rgb, 0), 255));
  assert.ok(buildFrameLut(rgb, 0, 0, 1, 0, new Uint32Array(256)).every((v) => v === 0));
});

test("frame LUT folds the normalisation in: display = a * stored + b, clamped", () => {
  const rgb = colormapRGB("viridis");
  const lut = buildFrameLut(rgb, 1, 0, 2, 0, new Uint32Array(256));
  assert.equal(lut[10], packRGBA(...rgbAt(rgb, 20), 255));
  assert.equal(lut[200], packRGBA(...rgbAt(rgb, 255), 255), "clamped at 255");
  const shifted = buildFrameLut(rgb, 1, 0.3, 0.5, 64, new Uint32Array(256));
  assert.equal(shifted[0], 0, "display 64 is below the threshold 76.5");
  assert.equal(shifted[26], packRGBA(...rgbAt(rgb, 77), 255), "display 77 is above it");
});

test("the pixel loop colours one image of a sprite through the table (no other writes)", () => {
  const h = 2;
  const w = 3;
  const sprite = new Uint8Array([0, 50, 100, 150, 200, 255, /* image 1 */ 255, 0, 255, 0, 255, 0]);
  const lut = new Uint32Array(256);
  for (let i = 0; i < 256; i++) lut[i] = i * 1000 + 7;
  const out = new Uint32Array(h * w + 2).fill(99);
  colorizeMap(sprite, spriteOffset(1, h, w), h * w, lut, out);
  assert.deepEqual(Array.from(out), [255007, 7, 255007, 7, 255007, 7, 99, 99]);
  // End to end with threshold/opacity on typed arrays.
  const rgb = colormapRGB("turbo");
  const table = buildFrameLut(rgb, 0.4, 0.3, 1, 0, new Uint32Array(256));
  const px = new Uint32Array(6);
  colorizeMap(sprite, 0, 6, table, px);
  const bytes = new Uint8Array(px.buffer);
  assert.deepEqual(Array.from(bytes.slice(0, 8)), [0, 0, 0, 0, 0, 0, 0, 0], "0 and 50 are below 0.3");
  assert.deepEqual(Array.from(bytes.slice(8, 12)), [...rgbAt(rgb, 100), 102]);
  assert.deepEqual(Array.from(bytes.slice(20, 24)), [...rgbAt(rgb, 255), 102]);
});

test("sprite slicing: image i occupies rows i*h … (i+1)*h-1", () => {
  assert.deepEqual(spriteRect(0, 64, 48), { sx: 0, sy: 0, sw: 48, sh: 64 });
  assert.deepEqual(spriteRect(3, 64, 48), { sx: 0, sy: 192, sw: 48, sh: 64 });
  assert.equal(spriteOffset(3, 64, 48), 3 * 64 * 48);
  assert.equal(spriteCount(16 * 7, 7), 16);
  assert.equal(spriteCount(100, 0), 0);
  const rgba = new Uint8ClampedArray([10, 10, 10, 255, 20, 20, 20, 255, 30, 1, 2, 255]);
  const grey = new Uint8Array(3);
  extractChannel(rgba, grey);
  assert.deepEqual(Array.from(grey), [10, 20, 30]);
  assert.deepEqual(Array.from(imageMaxima(new Uint8Array([1, 9, 3, 4, 0, 0]), 3, 2)), [9, 4, 0]);
});

test("per-image normalisation shows maps as stored", () => {
  const out = normalizationAffine("image", 1, 2, [255, 100], null, null, new Float64Array(2));
  assert.deepEqual(Array.from(out), [1, 0]);
});

test("shared normalisation without raw ranges rescales by the maximum over all images of the step", () => {
  const out = new Float64Array(2);
  assert.deepEqual(Array.from(normalizationAffine("shared", 0, 3, [100, 50, 200], null, null, out)), [255 / 200, 0]);
  assert.deepEqual(Array.from(normalizationAffine("shared", 1, 3, [0, 0, 0], null, null, out)), [1, 0], "all-zero step");
});

test("shared normalisation with raw ranges puts every image on the range over all images", () => {
  const out = new Float64Array(2);
  const rawMin = [0, 1, 0];
  const rawMax = [4, 3, 8];
  // image 0: raw = stored/255 * 4 → display = raw / 8 * 255 = stored * 0.5
  assert.deepEqual(Array.from(normalizationAffine("shared", 0, 3, [255, 255, 255], rawMin, rawMax, out)), [0.5, 0]);
  // image 1: raw = 1 + stored/255 * 2 → display = stored * 0.25 + 255/8
  assert.deepEqual(Array.from(normalizationAffine("shared", 1, 3, [255, 255, 255], rawMin, rawMax, out)), [0.25, 255 / 8]);
  assert.deepEqual(Array.from(normalizationAffine("shared", 2, 3, [255, 255, 255], rawMin, rawMax, out)), [1, 0]);
  // Incomplete ranges fall back to the stored maxima.
  assert.deepEqual(Array.from(normalizationAffine("shared", 0, 3, [100, 200, 50], [0, null, 0], rawMax, out)), [255 / 200, 0]);
});

test("nearest recorded step at or before, and the slider index", () => {
  const steps = [0, 100, 200, 300];
  assert.equal(stepAtOrBefore(steps, 200), 200);
  assert.equal(stepAtOrBefore(steps, 250), 200);
  assert.equal(stepAtOrBefore(steps, 1e9), 300);
  assert.equal(stepAtOrBefore([10, 20], 5), null);
  assert.equal(stepAtOrBefore([], 5), null);
  assert.equal(stepIndex(steps, null), 0);
  assert.equal(stepIndex(steps, 250), 2);
  assert.equal(stepIndex([10, 20], 5), 0);
  assert.equal(stepIndex([], 5), -1);
  assert.deepEqual(unionSteps([[0, 10, 20], [5, 10, 30]]), [0, 5, 10, 20, 30]);
});

test("prefetch order: neighbours first; ahead (wrapping) while playing", () => {
  assert.deepEqual(prefetchOrder(5, 10, false), [6, 4, 7, 3]);
  assert.deepEqual(prefetchOrder(0, 10, false), [1, 2]);
  assert.deepEqual(prefetchOrder(9, 10, true), [0, 1, 2, 3]);
  assert.deepEqual(prefetchOrder(0, 1, true), []);
  assert.deepEqual(prefetchOrder(1, 4, false, 100), [2, 0, 3], "a radius past the ends stops at them");
  // Small maps: every step; large ones: as many as fit the byte budget, at least 2 each way.
  assert.equal(prefetchRadius(16 * 7 * 7, 100), 100);
  assert.equal(prefetchRadius(PREFETCH_BYTES / 8, 100), 4);
  assert.equal(prefetchRadius(PREFETCH_BYTES, 100), 2);
  assert.equal(prefetchRadius(0, 100), 2);
});

test("LRU: recency, cost bound, eviction callback", () => {
  const evicted: string[] = [];
  const lru = new LruCache<string, number>(10, Infinity, (k) => evicted.push(k));
  lru.set("a", 1, 4);
  lru.set("b", 2, 4);
  assert.equal(lru.get("a"), 1); // a is now most recent
  lru.set("c", 3, 4); // 12 > 10: evict the least recent (b)
  assert.deepEqual(evicted, ["b"]);
  assert.deepEqual(lru.keys(), ["a", "c"]);
  assert.equal(lru.cost, 8);
  lru.set("big", 4, 50); // larger than the budget: kept alone
  assert.deepEqual(lru.keys(), ["big"]);
  assert.deepEqual(evicted, ["b", "a", "c"]);
  const counted = new LruCache<number, number>(Infinity, 2);
  counted.set(1, 1);
  counted.set(2, 2);
  counted.peek(1); // peek does not refresh
  counted.set(3, 3);
  assert.deepEqual(counted.keys(), [2, 3]);
  assert.ok(counted.delete(2));
  assert.equal(counted.size, 1);
});

test("upsampling in value space matches torch interpolate(bilinear, align_corners=False) within 1 level", () => {
  const identity = new Uint32Array(256).map((_, i) => i);
  const out = new Uint32Array(16);
  // Second image of a 2-image sprite of 2×2 maps (the first is garbage that must not leak in).
  const sprite = new Uint8Array([9, 9, 9, 9, 0, 100, 200, 255]);
  colorizeResampled(sprite, 4, 2, 2, resampleAxis(2, 4), resampleAxis(2, 4), identity, out, new Int32Array(8));
  assert.deepEqual(Array.from(out), [0, 25, 75, 100, 50, 72, 117, 139, 150, 167, 200, 216, 200, 214, 241, 255]);
  const grid = new Uint8Array(9).map((_, i) => i * 30);
  const out2 = new Uint32Array(10);
  colorizeResampled(grid, 0, 3, 3, resampleAxis(3, 5), resampleAxis(3, 2), identity, out2, new Int32Array(15));
  const torch = [23, 35, 53, 71, 83, 158, 170, 188, 206, 218]; // 70.5 and 205.5 round up in float
  assert.ok(Array.from(out2).every((v, i) => Math.abs(v - torch[i]) <= 1), `${Array.from(out2)} vs ${torch}`);
  const same = resampleAxis(3, 3);
  assert.deepEqual([Array.from(same.i0), Array.from(same.i1), Array.from(same.w)], [[0, 1, 2], [1, 2, 2], [0, 0, 0]]);
});
