import assert from "node:assert/strict";
import { test } from "node:test";
import { stepIndexAtOrBefore } from "../src/lib/steps";
import type { GradientsResponse } from "../src/views/grads/api";
import { findAlerts, flowColumns, log10Rows, median, rowsWithData, stepMedians } from "../src/views/grads/math";

function response(values: Record<string, (number | null)[][]>, steps = [0, 10, 20]): GradientsResponse {
  const names = ["conv", "relu", "fc", "head"];
  return {
    run: "r",
    fields: Object.keys(values),
    layers: names.map((name, order) => ({ name, moduleType: "M", shape: null, order })),
    steps,
    values,
  };
}

test("median of odd and even counts; per-step medians skip missing values", () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(median([]), null);
  assert.deepEqual(stepMedians([[1, null], [3, null], [2, 5]], 2), [2, 5]);
});

test("alerts: vanishing and exploding relative to the median at that step, NaN/Inf always, first step kept", () => {
  const data = response({
    gradNorm: [
      [1, 1, 1],
      [null, null, null], // a ReLU: no parameters, never compared
      [1, 1e-5, 1e-6], // vanishes from step 10
      [2, 1, 5000], // explodes at step 20 only
    ],
    gradNanCount: [[0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 3]],
    actGradInfCount: [[0, 1, 1], [0, 0, 0], [0, 0, 0], [0, 0, 0]],
  });
  const alerts = findAlerts(data, { measure: "gradNorm", vanish: 1e-3, explode: 1e3 });
  const brief = alerts.map((a) => [a.kind, a.layer, a.firstStep, a.lastStep, a.count]);
  assert.deepEqual(brief, [
    ["nan", "head", 20, 20, 1],
    ["inf", "conv", 10, 20, 2],
    ["exploding", "head", 20, 20, 1],
    ["vanishing", "fc", 10, 20, 2],
  ]);
  const vanishing = alerts[3];
  assert.equal(vanishing.value, 1e-5);
  assert.equal(vanishing.median, 1);
  // Looser thresholds: only NaN/Inf remain.
  const loose = findAlerts(data, { measure: "gradNorm", vanish: 1e-8, explode: 1e8 });
  assert.deepEqual(loose.map((a) => a.kind), ["nan", "inf"]);
  // The output-gradient measure is compared instead when chosen.
  const other = findAlerts(data, { measure: "actGradNorm", vanish: 1e-3, explode: 1e3 });
  assert.deepEqual(other.map((a) => a.kind), ["nan", "inf"]);
});

test("a step whose median is 0 flags nothing relative", () => {
  const data = response({ gradNorm: [[0], [0], [0], [1]] }, [0]);
  assert.deepEqual(findAlerts(data, { measure: "gradNorm", vanish: 1e-3, explode: 1e3 }), []);
});

test("flow columns: layers with parameters only, non-positive values dropped for the log scale", () => {
  const data = response({
    gradMeanAbs: [[0.1, 0.2, 0.3], [null, null, null], [0, 1e-3, 2e-3], [1, 1, 1]],
    gradMaxAbs: [[1, 2, 3], [null, null, null], [0, 1e-2, 2e-2], [5, 5, 5]],
  });
  const cols = flowColumns(data, 0);
  assert.deepEqual(cols.layers, ["conv", "fc", "head"]);
  assert.deepEqual(cols.mean, [0.1, null, 1]);
  assert.deepEqual(cols.max, [1, null, 5]);
  assert.deepEqual(flowColumns(data, 2).mean, [0.3, 2e-3, 1]);
  assert.deepEqual(rowsWithData(data, "gradMaxAbs"), [0, 2, 3]);
});

test("log10 rows and the step at or before a requested one", () => {
  assert.deepEqual(log10Rows([[100, 0, null, -1, 0.001]]), [[2, null, null, null, -3]]);
  assert.equal(stepIndexAtOrBefore([0, 10, 20], null), 2);
  assert.equal(stepIndexAtOrBefore([0, 10, 20], 15), 1);
  assert.equal(stepIndexAtOrBefore([0, 10, 20], 20), 2);
  assert.equal(stepIndexAtOrBefore([5, 10], 0), 0);
  assert.equal(stepIndexAtOrBefore([], 3), -1);
});

test("noise scale: ratio of moving averages, gaps keep the averages, no estimate while |G|² is not positive", async () => {
  const { smoothedNoiseScale } = await import("../src/views/grads/noise");
  // step 0: 4/2; step 1: EMA(0.5) of trace (4, 8) = 6, of |G|² (2, -1) = 0.5 -> 12; step 2 missing; step 3:
  // trace (6, 2) -> 4, |G|² (0.5, 1.5) -> 1 -> 4.
  assert.deepEqual(smoothedNoiseScale([4, 8, null, 2], [2, -1, 3, 1.5], 0.5), [2, 12, 12, 4]);
  assert.deepEqual(smoothedNoiseScale([1, 1], [-1, -1], 0.5), [null, null]);
  assert.deepEqual(smoothedNoiseScale([null], [1]), [null]);
});
