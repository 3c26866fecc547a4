import assert from "node:assert/strict";
import { test } from "node:test";
import { familyNames, log10Matrix, rankOf, stoppedEarly, valueRange } from "../src/views/ranks/math";

test("families: runs <name>/rank<r> sharing a prefix, two ranks or more (the server's rule)", () => {
  const runs = ["a/rank0", "a/rank1", "a/rank10", "b/rank0", "rank0", "rank1", "c", "a/rank1x", "x/y/rank2", "x/y/rank3"];
  assert.deepEqual(familyNames(runs), [".", "a", "x/y"]);
  assert.deepEqual(rankOf("x/y/rank3"), { family: "x/y", rank: 3 });
  assert.equal(rankOf("a/rank"), null);
  assert.deepEqual(familyNames(["d/rank1", "d/rank01"]), []); // one rank spelled twice
});

test("log matrix, range and the ranks that stopped early", () => {
  assert.deepEqual(log10Matrix([[100, 0, null, -1]]), [[2, null, null, null]]);
  assert.deepEqual(valueRange([[null, 3], [1, null]]), [1, 3]);
  assert.equal(valueRange([[null]]), null);
  assert.deepEqual(stoppedEarly([0, 1, 2], [14, 6, null]), [
    { rank: 1, last: 6 },
    { rank: 2, last: null },
  ]);
});
