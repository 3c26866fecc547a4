import assert from "node:assert/strict";
import { test } from "node:test";
import { axisStyle, STEP_INCRS, stepAxis } from "../src/lib/chart_axes";

/** The tick positions uPlot draws for a spacing: the multiples of it inside [min, max]. */
function ticks(min: number, max: number, incr: number): number[] {
  const out: number[] = [];
  for (let v = Math.ceil(min / incr) * incr; v <= max; v += incr) out.push(v);
  return out;
}

/** uPlot's choice of spacing: the smallest one at least `space` pixels apart. */
function chosen(incrs: readonly number[], min: number, max: number, width: number, space: number): number {
  const perUnit = width / (max - min);
  return incrs.find((i) => i * perUnit >= space) ?? incrs[incrs.length - 1];
}

test("step axis spacings are whole numbers, increasing, from 1 up to very long runs", () => {
  assert.equal(STEP_INCRS[0], 1);
  assert.deepEqual(STEP_INCRS.slice(0, 7), [1, 2, 5, 10, 20, 25, 50]);
  for (const v of STEP_INCRS) assert.ok(Number.isInteger(v), `${v} is not a whole number`);
  for (let i = 1; i < STEP_INCRS.length; i++) assert.ok(STEP_INCRS[i] > STEP_INCRS[i - 1]);
  assert.ok(STEP_INCRS[STEP_INCRS.length - 1] >= 1e15);
});

test("short runs get whole-step ticks where uPlot's default spacings give 0.5 and 2.5", () => {
  for (const [max, width] of [
    [1, 600],
    [3, 400],
    [5, 300],
    [7, 900],
    [40, 250],
  ]) {
    const incr = chosen(STEP_INCRS, 0, max, width, 50);
    for (const t of ticks(0, max, incr)) assert.ok(Number.isInteger(t), `tick ${t} for steps 0..${max}`);
    assert.ok(ticks(0, max, incr).length >= 1);
  }
  // The old spacings (uPlot's numeric default includes 0.5 and 2.5) did give fractional ticks here.
  const defaults = [0.1, 0.2, 0.25, 0.5, 1, 2, 2.5, 5, 10];
  assert.ok(ticks(0, 3, chosen(defaults, 0, 3, 400, 50)).some((t) => !Number.isInteger(t)));
});

test("step axes carry the spacings and the shared axis style", () => {
  for (const dark of [false, true]) {
    const a = stepAxis(dark);
    assert.deepEqual(a.incrs, [...STEP_INCRS]);
    assert.equal(a.stroke, axisStyle(dark).stroke);
    assert.equal(a.size, 34);
  }
  assert.notEqual(axisStyle(true).stroke, axisStyle(false).stroke);
});
