import assert from "node:assert/strict";
import { test } from "node:test";
import { ApiError, decodeF32, fetchRuns, matrixRows } from "../src/core/api";
import { fetchGradients } from "../src/views/grads/api";
import { fetchHeatmap } from "../src/views/stats/api";

function stubFetch(status: number, body: string, seen: string[] = []): void {
  globalThis.fetch = (async (input: RequestInfo | URL) => {
    seen.push(String(input));
    return new Response(body, { status, headers: { "Content-Type": "application/json" } });
  }) as typeof fetch;
}

test("requests are relative to the plugin base and encode parameters", async () => {
  const seen: string[] = [];
  stubFetch(200, JSON.stringify({ run: "a b", stat: "mean", layers: [], steps: [], values: [] }), seen);
  const data = await fetchHeatmap("a b&c", "mean");
  assert.equal(data.stat, "mean");
  assert.deepEqual(seen, ["./stats_heatmap?run=a+b%26c&stat=mean&max_steps=300&encoding=f32"]);
});

test("JSON errors become ApiError with the server's message and status", async () => {
  stubFetch(404, JSON.stringify({ error: { code: 404, message: "no run named 'x'" } }));
  await assert.rejects(fetchRuns(), (e: unknown) => {
    assert.ok(e instanceof ApiError);
    assert.equal(e.status, 404);
    assert.equal(e.message, "no run named 'x'");
    return true;
  });
});

test("non-JSON errors keep a readable message", async () => {
  stubFetch(500, "<html>Internal Server Error</html>");
  await assert.rejects(fetchRuns(), /Internal Server Error/);
});

test("network failures are reported, not thrown raw", async () => {
  globalThis.fetch = (async () => {
    throw new TypeError("Failed to fetch");
  }) as typeof fetch;
  await assert.rejects(fetchRuns(), (e: unknown) => e instanceof ApiError && e.status === 0 && /Could not reach/.test(e.message));
});

test("gradient requests ask only for what the view shows", async () => {
  const seen: string[] = [];
  stubFetch(200, JSON.stringify({ run: "r", fields: [], layers: [], steps: [], values: {} }), seen);
  await fetchGradients("r");
  await fetchGradients("r", { maxSteps: 300, fields: ["gradNorm", "gradNanCount"] });
  await fetchGradients("r", { layer: "a/b c", fields: ["updateRatio"] });
  await fetchGradients("r", { step: 40 });
  assert.deepEqual(seen, [
    "./gradients?run=r&encoding=f32",
    "./gradients?run=r&encoding=f32&fields=gradNorm%2CgradNanCount&max_steps=300",
    "./gradients?run=r&encoding=f32&fields=updateRatio&layer=a%2Fb+c",
    "./gradients?run=r&encoding=f32&step=40",
  ]);
});

test("f32 matrices decode to rows with null where the server sent NaN", async () => {
  const values = new Float32Array([1.5, Number.NaN, -2, 0.25, Number.POSITIVE_INFINITY, 1e-20]);
  const f32 = Buffer.from(values.buffer).toString("base64");
  assert.deepEqual(matrixRows({ f32, shape: [2, 3] }), [
    [1.5, null, -2],
    [0.25, null, Math.fround(1e-20)],
  ]);
  assert.deepEqual(matrixRows([[1, null]]), [[1, null]], "JSON rows pass through");
  assert.throws(() => decodeF32({ f32, shape: [4, 3] }), ApiError);
  const seen: string[] = [];
  stubFetch(200, JSON.stringify({ run: "r", fields: ["gradNorm"], layers: [], steps: [0, 1], values: { gradNorm: { f32: Buffer.from(new Float32Array([3, Number.NaN]).buffer).toString("base64"), shape: [1, 2] } } }), seen);
  const data = await fetchGradients("r", { fields: ["gradNorm"] });
  assert.deepEqual(data.values.gradNorm, [[3, null]]);
});
