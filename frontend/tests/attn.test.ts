import assert from "node:assert/strict";
import { test } from "node:test";
import { cellLayout, keyAt, queryRow, tokenName } from "../src/views/attn/math";

test("a class token and a square grid: keys after the class token fill the grid row by row", () => {
  const layout = cellLayout(10, 3, 1);
  assert.deepEqual(layout, { cols: 3, rows: 3, lead: 1 });
  assert.equal(keyAt(layout, 0, 0), 1);
  assert.equal(keyAt(layout, 2, 2), 9);
  assert.equal(tokenName(layout, 0), "class token");
  assert.equal(tokenName(layout, 6), "patch (1, 2)");
});

test("a sequence (or a grid that does not add up) is one strip of tokens", () => {
  assert.deepEqual(cellLayout(7, 0, 0), { cols: 7, rows: 1, lead: 0 });
  assert.deepEqual(cellLayout(11, 3, 1), { cols: 11, rows: 1, lead: 0 });
  assert.equal(tokenName(cellLayout(7, 0, 0), 4), "token 4");
});

test("a query's stored row comes from the pooled blocks, none outside them", () => {
  const blocks = [0, 1, 1, 2, 1, 1, 2, 3, 3, 4];
  assert.equal(queryRow(blocks, 9), 4);
  assert.equal(queryRow(blocks, 5), 1);
  assert.equal(queryRow(blocks, 10), null);
  assert.equal(queryRow(blocks, -1), null);
});

test("u8 codes decode to (q / 255)^2 and vectors come out of the last axis", async () => {
  const { decodeCodes, vectorAt } = await import("../src/views/attn/api");
  const bytes = String.fromCharCode(0, 255, 128, 51, 10, 20);
  const p = decodeCodes({ u8: btoa(bytes), shape: [1, 2, 3] });
  assert.deepEqual(vectorAt(p, [0, 0]).map((v) => Math.round(v * 1e4) / 1e4), [0, 1, 0.252]);
  assert.equal(vectorAt(p, [0, 1]).length, 3);
  assert.deepEqual(vectorAt(p, [0, 2]), []);
});
