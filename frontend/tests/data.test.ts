import assert from "node:assert/strict";
import { test } from "node:test";
import { startLoaders } from "../src/core/loaders";
import { activeView, reloadTick, runs, selectedLayer, selectedRun } from "../src/core/state";
import { heatmap, layerStats, startStatsLoaders } from "../src/views/stats/state";

interface Pending {
  url: string;
  resolve: (body: unknown) => void;
}

const pending: Pending[] = [];
globalThis.fetch = ((input: RequestInfo | URL) =>
  new Promise<Response>((resolve) => {
    pending.push({
      url: String(input),
      resolve: (body) => resolve(new Response(JSON.stringify(body), { status: 200 })),
    });
  })) as typeof fetch;

const tick = () => new Promise((r) => setTimeout(r, 0));
function take(prefix: string): Pending {
  const i = pending.findIndex((p) => p.url.startsWith(prefix));
  assert.ok(i >= 0, `no pending request for ${prefix}; have ${pending.map((p) => p.url).join(", ")}`);
  return pending.splice(i, 1)[0];
}
const layersBody = (run: string) => ({
  run,
  stats: ["mean"],
  layers: [{ name: "conv", moduleType: "Conv2d", shape: [1], order: 1, numSteps: 2, maxStep: 1 }],
});
const healthBody = (run: string) => ({ run, thresholds: {}, alerts: [], offered: ["peakToRms"] });
const heatmapBody = (run: string) => ({ run, stat: "mean", layers: ["conv"], steps: [0, 1], values: [[1, 2]] });

test("loaders follow the selection, drop stale responses and keep data across reloads", async () => {
  activeView.value = "stats"; // the heatmap is fetched only while its view is shown
  startLoaders({ layer: "conv" });
  startStatsLoaders();
  take("./runs").resolve({ runs: [{ run: "a", numLayers: 1, maxStep: 1 }, { run: "b", numLayers: 1, maxStep: 1 }] });
  await tick();
  assert.equal(selectedRun.value, "a");
  const heatmapA = take("./stats_heatmap?run=a&stat=mean&max_steps=300");
  take("./layers?run=a").resolve(layersBody("a"));
  await tick();
  assert.equal(selectedLayer.value, "conv", "the deep-linked layer is applied once the run's layers arrive");
  take("./layer_stats?run=a&layer=conv").resolve({ run: "a", layer: "conv", steps: [], wallTimes: [], stats: {} });
  // The transformer-health card and the layer's health charts, once each.
  take("./health_alerts?run=a&massive_ratio=100&peak_rms=100").resolve(healthBody("a"));
  take("./layer_health?run=a&layer=conv").resolve({ run: "a", layer: "conv", steps: [], peakToRms: [] });

  // Switch runs while run a's heatmap is still in flight; its late answer must be dropped.
  selectedRun.value = "b";
  await tick();
  take("./stats_heatmap?run=b&stat=mean&max_steps=300").resolve(heatmapBody("b"));
  await tick();
  heatmapA.resolve(heatmapBody("a"));
  await tick();
  assert.equal(heatmap.value.data?.run, "b");
  assert.equal(heatmap.value.loading, false);

  take("./layers?run=b").resolve(layersBody("b"));
  await tick();
  take("./layer_stats?run=b&layer=conv").resolve({ run: "b", layer: "conv", steps: [], wallTimes: [], stats: {} });
  take("./health_alerts?run=b&massive_ratio=100&peak_rms=100").resolve(healthBody("b"));
  take("./layer_health?run=b&layer=conv").resolve({ run: "b", layer: "conv", steps: [], peakToRms: [] });
  await tick();
  assert.equal(layerStats.value.data?.run, "b");

  // TensorBoard reload: everything refetches, the old data stays visible meanwhile.
  reloadTick.value++;
  await tick();
  assert.equal(heatmap.value.loading, true);
  assert.equal(heatmap.value.data?.run, "b");
  take("./runs").resolve({ runs: [{ run: "a", numLayers: 1, maxStep: 1 }, { run: "b", numLayers: 1, maxStep: 1 }] });
  take("./stats_heatmap?run=b&stat=mean&max_steps=300").resolve(heatmapBody("b"));
  take("./layers?run=b").resolve(layersBody("b"));
  take("./layer_stats?run=b&layer=conv").resolve({ run: "b", layer: "conv", steps: [], wallTimes: [], stats: {} });
  take("./health_alerts?run=b&massive_ratio=100&peak_rms=100").resolve(healthBody("b"));
  take("./layer_health?run=b&layer=conv").resolve({ run: "b", layer: "conv", steps: [], peakToRms: [] });
  await tick();
  assert.equal(selectedRun.value, "b", "reload keeps the selection");
  assert.equal(selectedLayer.value, "conv");
  assert.equal(heatmap.value.loading, false);
  assert.equal(runs.value.data?.length, 2);
  assert.deepEqual(pending.map((p) => p.url), [], "no duplicate requests on reload");

  // The Model view does not show the heatmap: leaving the statistics view fetches nothing for it.
  activeView.value = "model";
  reloadTick.value++;
  await tick();
  assert.ok(!pending.some((p) => p.url.startsWith("./stats_heatmap")), "no heatmap request outside its view");
  assert.equal(heatmap.value.data, null);
});
