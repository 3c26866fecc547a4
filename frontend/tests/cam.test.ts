import assert from "node:assert/strict";
import { test } from "node:test";
import { SpriteStore } from "../src/core/sprites";
import { activeView, reloadTick, runs, selectedRun } from "../src/core/state";
import type { MapSeries } from "../src/views/cam/api";
import { startCamLoaders } from "../src/views/cam/loaders";
import {
  camKind,
  camLayer,
  camMethods,
  camStep,
  compareRun,
  currentStep,
  frameModel,
  mapsA,
  mapsB,
  predictionAt,
  probeA,
  sliderSteps,
  urlsAtStep,
} from "../src/views/cam/state";

const tick = () => new Promise((r) => setTimeout(r, 0));

function series(method: string, steps: number[], layer = "features.3"): MapSeries {
  return { kind: "cam", probe: "probe", layer, method, auto: layer === "features.3", height: 8, width: 8, numImages: 4, steps };
}
const probe = (run: string) => ({
  run,
  probe: "probe",
  numImages: 4,
  height: 8,
  width: 8,
  step: 0,
  labels: [0, 1, 2, 1],
  classNames: ["circle", "square", "triangle"],
  imageUrl: `probe_image?run=${run}&probe=probe`,
});

test("sprite store: priority order, bounded concurrency, stale fetches aborted, errors kept", async () => {
  const started: string[] = [];
  const aborted: string[] = [];
  const finish = new Map<string, (v: number) => void>();
  const store = new SpriteStore<number>(
    (url, signal) =>
      new Promise<number>((resolve, reject) => {
        started.push(url);
        signal.addEventListener("abort", () => {
          aborted.push(url);
          reject(new DOMException("aborted", "AbortError"));
        });
        finish.set(url, resolve);
      }),
    () => 1,
    3,
    2,
  );
  let changes = 0;
  store.onChange(() => changes++);
  store.want(["s0", "s1", "s2"]);
  assert.deepEqual(started, ["s0", "s1"], "two at a time, most wanted first");
  // The slider moved: s0 and s1 are stale now.
  store.want(["s5", "s6"]);
  assert.deepEqual(aborted, ["s0", "s1"]);
  assert.deepEqual(started.slice(2), ["s5", "s6"]);
  finish.get("s5")!(5);
  await tick();
  assert.equal(store.get("s5"), 5);
  assert.equal(changes, 1);
  assert.ok(!store.isLoading("s5"));
  // A late answer of an aborted fetch is ignored.
  finish.get("s0")!(0);
  await tick();
  assert.equal(store.has("s0"), false);
  // Cached entries are not refetched; failures are remembered until cleared.
  const failing = new SpriteStore<number>(async () => {
    throw new Error("HTTP 404");
  }, () => 1, 10);
  failing.want(["x"]);
  await tick();
  assert.equal(failing.error("x"), "HTTP 404");
  failing.want(["x"]);
  assert.equal(failing.isLoading("x"), false);
  failing.clearErrors();
  assert.equal(failing.error("x"), undefined);
});

test("predictions at or before a step", () => {
  const preds = { run: "a", steps: [0, 10], predicted: [[1, 0], null], probability: [[0.5, 0.9], null] };
  assert.deepEqual(predictionAt(preds, 5, 1), { cls: 0, probability: 0.9, step: 0 });
  assert.equal(predictionAt(preds, 10, 1), null, "null row: unknown");
  assert.equal(predictionAt(preds, null, 0), null);
});

interface Pending {
  url: string;
  resolve: (status: number, body: unknown) => void;
}
const pending: Pending[] = [];
globalThis.fetch = ((input: RequestInfo | URL) =>
  new Promise<Response>((resolve) => {
    pending.push({
      url: String(input),
      resolve: (status, body) => resolve(new Response(JSON.stringify(body), { status })),
    });
  })) as typeof fetch;

function take(prefix: string): Pending {
  const i = pending.findIndex((p) => p.url.startsWith(prefix));
  assert.ok(i >= 0, `no pending request for ${prefix}; have ${pending.map((p) => p.url).join(", ")}`);
  return pending.splice(i, 1)[0];
}

test("loaders: deep-linked selection kept, defaults otherwise; second run matched at the nearest earlier step", async () => {
  runs.value = { data: [{ run: "a", numLayers: 1, maxStep: 300 }, { run: "b", numLayers: 1, maxStep: 300 }], loading: false, error: null };
  selectedRun.value = "a";
  camMethods.value = ["layercam", "nope"]; // as from a deep link
  camLayer.value = "missing.layer";
  compareRun.value = "b";
  camStep.value = 250;
  startCamLoaders();
  await tick();
  assert.deepEqual(pending, [], "nothing is fetched while another view is shown");
  activeView.value = "cam";
  await tick();
  take("./maps?run=a").resolve(200, {
    run: "a",
    series: [series("gradcam", [0, 100, 200, 300]), series("layercam", [0, 100, 200, 300]), series("gradcam", [0, 300], "features.1")],
  });
  assert.ok(!pending.some((p) => p.url.startsWith("./probe")), "the probe waits for the series (no 404 for runs without)");
  await tick();
  take("./probe?run=a").resolve(200, probe("a"));
  take("./predictions?run=a").resolve(200, { run: "a", steps: [0, 100, 200, 300], predicted: [[0, 0, 0, 0], [0, 1, 2, 2], [0, 1, 2, 1], [0, 1, 2, 1]], probability: [[0.3, 0.3, 0.3, 0.3], [0.5, 0.5, 0.5, 0.5], [0.8, 0.8, 0.8, 0.8], [0.9, 0.9, 0.9, 0.9]] });
  await tick();
  assert.equal(camLayer.value, "features.3", "an unknown layer falls back to the automatic one");
  assert.deepEqual(camMethods.value, ["layercam"], "known deep-linked methods are kept");
  assert.deepEqual(sliderSteps.value, [0, 100, 200, 300]);
  assert.equal(currentStep.value, 200, "step 250 shows the recorded step at or before it");

  take("./maps?run=b").resolve(200, { run: "b", series: [series("layercam", [0, 150]), series("gradcam", [0, 100, 200])] });
  await tick();
  take("./probe?run=b").resolve(200, probe("b"));
  take("./predictions?run=b").resolve(200, { run: "b", steps: [], predicted: [], probability: [] });
  await tick();
  camMethods.value = ["gradcam", "layercam"];
  await tick();
  let m = frameModel.value!;
  assert.equal(m.numImages, 4);
  assert.deepEqual(m.methods, ["gradcam", "layercam"]);
  assert.equal(m.slots.length, 2);
  assert.equal(m.slots[0].probeUrl, "./probe_image?run=a&probe=probe#stored=0");
  assert.deepEqual(m.slots[0].sources.map((s) => s.url), [
    "./map_image?run=a&kind=cam&layer=features.3&method=gradcam&step=200",
    "./map_image?run=a&kind=cam&layer=features.3&method=layercam&step=200",
  ]);
  assert.deepEqual(m.slots[1].sources.map((s) => s.step), [200, 150], "run b: same step, else the nearest earlier");
  const urls: string[] = [];
  urlsAtStep(m, 100, urls);
  assert.equal(urls.length, 4);
  assert.ok(urls[3].endsWith("method=layercam&step=0"));

  // Run b misses a method: its tile has no source, not an error.
  camLayer.value = "features.1";
  await tick();
  m = frameModel.value!;
  assert.deepEqual(camMethods.value, ["gradcam"], "methods narrowed to the layer's");
  assert.equal(m.slots[1].sources[0].series, null);
  assert.deepEqual(sliderSteps.value, [0, 300]);
  assert.equal(currentStep.value, 0);
  assert.equal(mapsB.value.data?.run, "b");
  assert.equal(probeA.value.data?.numImages, 4);
  assert.equal(mapsA.value.error, null);
});

test("a run with saliency maps only: the viewer switches to them (layer-less series)", async () => {
  runs.value = { data: [{ run: "a", numLayers: 1, maxStep: 300 }, { run: "s", numLayers: 1, maxStep: 20 }], loading: false, error: null };
  compareRun.value = null;
  selectedRun.value = "s";
  await tick();
  const sal = (method: string): MapSeries => ({ kind: "saliency", probe: "probe", layer: "", method, height: 8, width: 8, numImages: 4, steps: [0, 20] });
  take("./maps?run=s").resolve(200, { run: "s", series: [sal("integrated_gradients"), sal("gradient")] });
  await tick();
  take("./probe?run=s").resolve(200, probe("s"));
  take("./predictions?run=s").resolve(200, { run: "s", steps: [], predicted: [], probability: [] });
  await tick();
  assert.equal(camKind.value, "saliency");
  assert.equal(camLayer.value, "");
  assert.deepEqual(camMethods.value, ["gradient"]);
  const m = frameModel.value!;
  // The step carries over from the previous run: 300 shows the last step at or before it.
  assert.equal(m.slots[0].sources[0].url, "./map_image?run=s&kind=saliency&layer=&method=gradient&step=20");
  assert.equal(predictionAt(m.slots[0].predictions, 0, 0), null, "no predictions: no label");

  // TensorBoard's reload: each resource is refetched once, the selection and data stay.
  reloadTick.value++;
  await tick();
  take("./maps?run=s").resolve(200, { run: "s", series: [sal("integrated_gradients"), sal("gradient")] });
  await tick();
  take("./probe?run=s").resolve(200, probe("s"));
  take("./predictions?run=s").resolve(200, { run: "s", steps: [], predicted: [], probability: [] });
  await tick();
  assert.deepEqual(pending.map((p) => p.url), [], "no duplicate requests on reload");
  assert.deepEqual(camMethods.value, ["gradient"]);
  assert.ok(frameModel.value);
});

test("FullGrad's layerless records are named as the whole model; its method as users know it", async () => {
  const { layerLabel, methodLabel } = await import("../src/views/cam/labels");
  assert.equal(layerLabel(""), "whole model");
  assert.equal(layerLabel("features.0"), "features.0");
  assert.equal(methodLabel("fullgrad"), "FullGrad");
  assert.equal(methodLabel("gradcam"), "gradcam");
});
