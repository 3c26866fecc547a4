import assert from "node:assert/strict";
import { test } from "node:test";
import type { TokensResponse } from "../src/views/tokens/api";
import { overlaySources, rowScale, tokenColor } from "../src/views/tokens/overlays";

test("a row's scale is its largest |value| over real tokens only", () => {
  assert.equal(rowScale([0.5, -2, 9], [1, 1, 0]), 2);
  assert.equal(rowScale([Number.NaN, 0], [1, 1]), 0);
});

test("token colours: red for positive, blue for negative, opacity by |value| / scale", () => {
  assert.equal(tokenColor(1, 2, true), "rgba(220, 38, 38, 0.425)");
  assert.equal(tokenColor(-2, 2, true), "rgba(37, 99, 235, 0.850)");
  assert.equal(tokenColor(-2, 2, false), "rgba(220, 38, 38, 0.850)");
  assert.equal(tokenColor(1, 0, true), "transparent");
});

test("overlay sources: one per saliency method the answer holds, in its order", () => {
  const data = {
    overlays: [
      { kind: "saliency", name: "grad_x_input" },
      { kind: "saliency", name: "missing" },
      { kind: "attention", name: "layer0" },
    ],
    saliency: { grad_x_input: [[1, -1]] },
  } as unknown as TokensResponse;
  const sources = overlaySources(data);
  assert.deepEqual(
    sources.map((s) => [s.id, s.label]),
    [["saliency:grad_x_input", "Gradient × input"]],
  );
  assert.deepEqual(sources[0].values, [[1, -1]]);
});

test("attention overlay: the default query per sequence and which tokens can be clicked", async () => {
  const { canPick, defaultQuery } = await import("../src/views/tokens/attention");
  const layer = { queryRule: "last_token", queryIndex: -1, rows: { numSamples: 1, queryBlocks: [0, 1, 2, 3] } } as never;
  assert.equal(defaultQuery(layer, [1, 1, 1, 0]), 2, "a causal model: the last real token, not the padding");
  assert.equal(defaultQuery({ queryRule: "first" } as never, [1, 1, 0]), 0, "an encoder: [CLS]");
  assert.equal(defaultQuery({ queryRule: "mean" } as never, [1, 1]), null);
  assert.ok(canPick(layer, 0, 3) && !canPick(layer, 1, 0), "per-query rows only for the first sequence(s)");
  assert.ok(!canPick(layer, 0, 4) && !canPick(null, 0, 0));
});
