// State of the overlay viewer (CAM and saliency maps over the probe images): selection signals,
// loaded data, and the derived frame model the drawing engine and the components read.
import { computed, signal } from "@preact/signals";
import { DEFAULT_PROBE, probeImageUrl, type ProbeResponse } from "../../core/api";
import { activeView, idle, selectedRun, type Loadable } from "../../core/state";
import { MAP_KINDS } from "../../generated/fields";
import type { ColormapName } from "../../lib/colormaps";
import { stepAtOrBefore, stepIndex, unionSteps } from "../../lib/steps";
import { mapImageUrl, type MapKind, type MapSeries, type MapsResponse, type PredictionsResponse } from "./api";
import { type MapNormalization } from "./overlay_math";

export const CAM_VIEW = "cam";
export const DEFAULT_CAM_COLORMAP: ColormapName = "jet";
export const DEFAULT_OPACITY = 0.5;
export const DEFAULT_THRESHOLD = 0;
export const DEFAULT_TILE_SIZE = 160;
export const MIN_TILE_SIZE = 64;
export const MAX_TILE_SIZE = 384;
export const DEFAULT_FPS = 4;

// Selection
export const camKind = signal<MapKind>("cam");
export const camProbe = signal<string>(DEFAULT_PROBE);
export const camLayer = signal<string | null>(null);
export const camMethods = signal<string[]>([]);
/** The requested step; the shown step is the recorded one at or before it (null: the first). */
export const camStep = signal<number | null>(null);
export const camColormap = signal<ColormapName>(DEFAULT_CAM_COLORMAP);
export const camOpacity = signal(DEFAULT_OPACITY);
export const camThreshold = signal(DEFAULT_THRESHOLD);
export const camNorm = signal<MapNormalization>("image");
export const camTileSize = signal(DEFAULT_TILE_SIZE);
export const compareRun = signal<string | null>(null);
export const selectedImage = signal<number | null>(null);
export const playing = signal(false);

// Data (A: the selected run, B: the comparison run)
export const mapsA = signal<Loadable<MapsResponse>>(idle());
export const probeA = signal<Loadable<ProbeResponse>>(idle());
export const predsA = signal<Loadable<PredictionsResponse>>(idle());
export const mapsB = signal<Loadable<MapsResponse>>(idle());
export const probeB = signal<Loadable<ProbeResponse>>(idle());
export const predsB = signal<Loadable<PredictionsResponse>>(idle());

/** Whether `s` names a kind of map (a deep link's `cam.kind`). */
export function isMapKind(s: string | undefined): s is MapKind {
  return (MAP_KINDS as readonly (string | undefined)[]).includes(s);
}

export const KIND_LABELS: Record<MapKind, string> = { cam: "CAM", saliency: "Saliency" };

export function probeOf(s: { probe?: string }): string {
  return s.probe ?? DEFAULT_PROBE;
}

/** The series of the selected run (maps of another run are ignored until they arrive). */
export const runSeries = computed<MapSeries[]>(() => {
  const m = mapsA.value.data;
  return m && m.run === selectedRun.value ? m.series : [];
});

export const availableProbes = computed(() => [...new Set(runSeries.value.map(probeOf))]);

export const availableKinds = computed<MapKind[]>(() => {
  const probe = camProbe.value;
  const kinds = new Set(runSeries.value.filter((s) => probeOf(s) === probe).map((s) => s.kind));
  return MAP_KINDS.filter((k) => kinds.has(k));
});

export const availableLayers = computed(() => {
  const probe = camProbe.value;
  const kind = camKind.value;
  const out: { name: string; auto: boolean; reason: string }[] = [];
  for (const s of runSeries.value) {
    if (probeOf(s) !== probe || s.kind !== kind) continue;
    const existing = out.find((l) => l.name === s.layer);
    if (existing) {
      existing.auto ||= !!s.auto;
      existing.reason ||= s.layerReason ?? "";
    } else out.push({ name: s.layer, auto: !!s.auto, reason: s.layerReason ?? "" });
  }
  return out;
});

export const availableMethods = computed(() => {
  const probe = camProbe.value;
  const kind = camKind.value;
  const layer = camLayer.value ?? "";
  return runSeries.value.filter((s) => probeOf(s) === probe && s.kind === kind && s.layer === layer).map((s) => s.method);
});

function findSeries(list: readonly MapSeries[], probe: string, kind: MapKind, layer: string, method: string): MapSeries | null {
  for (const s of list) if (probeOf(s) === probe && s.kind === kind && s.layer === layer && s.method === method) return s;
  return null;
}

/** Selected series of run A, in the order of the selected methods. */
export const selectedSeries = computed<MapSeries[]>(() => {
  const list = runSeries.value;
  const probe = camProbe.value;
  const kind = camKind.value;
  const layer = camLayer.value ?? "";
  const out: MapSeries[] = [];
  for (const m of camMethods.value) {
    const s = findSeries(list, probe, kind, layer, m);
    if (s) out.push(s);
  }
  return out;
});

/** Steps of the slider: every step recorded by one of the selected series. */
export const sliderSteps = computed<number[]>(() => unionSteps(selectedSeries.value.map((s) => s.steps)));
export const sliderIndex = computed(() => stepIndex(sliderSteps.value, camStep.value));
export const currentStep = computed<number | null>(() => {
  const i = sliderIndex.value;
  return i >= 0 ? sliderSteps.value[i] : null;
});

// ---------------------------------------------------------------------------------------------
// The frame model: what every tile shows at the current step.

export interface TileSource {
  method: string;
  series: MapSeries | null;
  /** The recorded step shown (at or before the current step), or null when there is none. */
  step: number | null;
  url: string | null;
}

export interface Slot {
  run: string;
  probe: ProbeResponse | null;
  probeUrl: string | null;
  /** Probe image size (height, width) for the tile aspect ratio. */
  height: number;
  width: number;
  sources: TileSource[];
  predictions: PredictionsResponse | null;
}

export interface FrameModel {
  steps: number[];
  index: number;
  step: number | null;
  numImages: number;
  methods: string[];
  slots: Slot[];
  classNames: string[] | null;
  labels: number[] | null;
}

function makeSource(run: string, series: MapSeries | null, method: string, step: number | null): TileSource {
  if (!series || step === null) return { method, series, step: null, url: null };
  const shown = stepAtOrBefore(series.steps, step);
  return { method, series, step: shown, url: shown === null ? null : mapImageUrl(run, series, shown) };
}

/** Map URLs of every tile source of every slot at `step` (for prefetching). */
export function urlsAtStep(model: FrameModel, step: number, out: string[]): void {
  for (const slot of model.slots) {
    for (const src of slot.sources) {
      if (!src.series) continue;
      const s = stepAtOrBefore(src.series.steps, step);
      if (s !== null) out.push(mapImageUrl(slot.run, src.series, s));
    }
  }
}

/**
 * URL of a probe's sprite. The fragment (not sent) makes the step at which the images were stored
 * part of the cache key, so re-stored probe images are refetched.
 */
function probeUrlOf(p: ProbeResponse, name: string): string {
  const url = p.imageUrl ? "./" + p.imageUrl.replace(/^\.\//, "") : probeImageUrl(p.run, name);
  return url + "#stored=" + p.step;
}

export const frameModel = computed<FrameModel | null>(() => {
  const run = selectedRun.value;
  const series = selectedSeries.value;
  const probe = probeA.value.data;
  if (run === null || !series.length) return null;
  const probeName = camProbe.value;
  const probeOk = probe && probe.run === run && (probe.probe ?? DEFAULT_PROBE) === probeName ? probe : null;
  const steps = sliderSteps.value;
  const index = sliderIndex.value;
  const step = index >= 0 ? steps[index] : null;
  const methods = series.map((s) => s.method);
  const predsOk = predsA.value.data?.run === run ? predsA.value.data : null;
  const first = series[0];
  const slots: Slot[] = [
    {
      run,
      probe: probeOk,
      probeUrl: probeOk ? probeUrlOf(probeOk, probeName) : null,
      height: probeOk?.height ?? first.height,
      width: probeOk?.width ?? first.width,
      sources: series.map((s) => makeSource(run, s, s.method, step)),
      predictions: predsOk,
    },
  ];
  const other = compareRun.value;
  if (other !== null && other !== run) {
    const mb = mapsB.value.data?.run === other ? mapsB.value.data : null;
    const pb = probeB.value.data?.run === other ? probeB.value.data : null;
    const kind = camKind.value;
    const layer = camLayer.value ?? "";
    slots.push({
      run: other,
      probe: pb,
      probeUrl: pb ? probeUrlOf(pb, probeName) : slots[0].probeUrl,
      height: pb?.height ?? slots[0].height,
      width: pb?.width ?? slots[0].width,
      sources: methods.map((m) => makeSource(other, mb ? findSeries(mb.series, probeName, kind, layer, m) : null, m, step)),
      predictions: predsB.value.data?.run === other ? predsB.value.data : null,
    });
  }
  const numImages = probeOk?.numImages ?? first.numImages;
  return {
    steps,
    index,
    step,
    numImages,
    methods,
    slots,
    classNames: probeOk?.classNames ?? null,
    labels: probeOk?.labels ?? null,
  };
});

/** What the model predicted for image `image` at (or just before) `step`, from one slot. */
export function predictionAt(
  preds: PredictionsResponse | null,
  step: number | null,
  image: number,
): { cls: number; probability: number | null; step: number } | null {
  if (!preds || step === null || !preds.steps.length) return null;
  const s = stepAtOrBefore(preds.steps, step);
  if (s === null) return null;
  const j = preds.steps.indexOf(s);
  const cls = preds.predicted[j]?.[image];
  if (typeof cls !== "number") return null;
  const p = preds.probability[j]?.[image];
  return { cls, probability: typeof p === "number" ? p : null, step: s };
}

export function className(names: string[] | null, cls: number): string {
  return names && cls >= 0 && cls < names.length ? names[cls] : `class ${cls}`;
}

/** Show the CAM view with the CAMs of `layer` (the layer panel's link). */
export function showLayerCams(layer: string): void {
  camKind.value = "cam";
  camLayer.value = layer;
  activeView.value = CAM_VIEW;
}
