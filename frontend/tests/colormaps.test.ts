import assert from "node:assert/strict";
import { test } from "node:test";
import { COLORMAP_NAMES, colormapLUT, colormapRGB, packRGBA } from "../src/lib/colormaps";

const rgbAt = (name: Parameters<typeof colormapRGB>[0], i: number) => Array.from(colormapRGB(name).slice(i * 3, i * 3 + 3));

test("four 256-entry colormaps", () => {
  assert.deepEqual(COLORMAP_NAMES, ["viridis", "inferno", "turbo", "jet"]);
  for (const name of COLORMAP_NAMES) {
    assert.equal(colormapRGB(name).length, 768);
    assert.equal(colormapLUT(name).length, 256);
  }
});

test("endpoints match matplotlib (round(255 v)) and OpenCV-style jet", () => {
  assert.deepEqual(rgbAt("viridis", 0), [68, 1, 84]); // 0.267004, 0.004874, 0.329415
  assert.deepEqual(rgbAt("viridis", 255), [253, 231, 37]); // 0.993248, 0.906157, 0.143936
  assert.deepEqual(rgbAt("inferno", 0), [0, 0, 4]);
  assert.deepEqual(rgbAt("inferno", 255), [252, 255, 164]);
  assert.deepEqual(rgbAt("turbo", 0), [48, 18, 59]); // Google's table: 0.18995, 0.07176, 0.23217
  assert.deepEqual(rgbAt("turbo", 255), [122, 4, 3]); // 0.4796, 0.01583, 0.01055
  assert.deepEqual(rgbAt("jet", 0), [0, 0, 128]);
  assert.deepEqual(rgbAt("jet", 255), [128, 0, 0]);
});

test("packed LUT entries are opaque and in platform byte order", () => {
  const lut = colormapLUT("viridis");
  const bytes = new Uint8Array(lut.buffer, 0, 4);
  assert.deepEqual(Array.from(bytes), [68, 1, 84, 255]);
  const one = new Uint8Array(new Uint32Array([packRGBA(1, 2, 3, 4)]).buffer);
  assert.deepEqual(Array.from(one), [1, 2, 3, 4]);
});
