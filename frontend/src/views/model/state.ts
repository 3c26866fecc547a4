// State of the Model view: the model table (the tab's index), the run's dead/saturated units, and
// the selected layer's histograms. Fetched only while the view is shown; the selected layer is the
// tab-wide `selectedLayer` (deep link key `layer`).
import { computed, signal } from "@preact/signals";
import { resource, sampledThenExact } from "../../core/resource";
import { activeView, idle, layers, selectedLayer, selectedRun, type Loadable } from "../../core/state";
import { fetchMaps, type MapsResponse } from "../cam/api";
import {
  fetchHistograms,
  fetchModelTable,
  fetchParamHistograms,
  fetchUnits,
  type HistogramsResponse,
  type ModelTableResponse,
  type ParamHistogramsResponse,
  type UnitsResponse,
} from "./api";
import { findUnitAlerts, type UnitAlert } from "./math";

export const MODEL_VIEW = "model";
export const DEFAULT_TREE_DEPTH = 2;

// Settings
export const treeDepth = signal(DEFAULT_TREE_DEPTH);
export const treeOpen = signal<ReadonlyMap<string, boolean>>(new Map());
export const treeFilter = signal("");
/** The histogram step (null: the last recorded one); kept when switching layers. */
export const histStep = signal<number | null>(null);

// Data
export const modelTable = signal<Loadable<ModelTableResponse>>(idle());
export const unitStats = signal<Loadable<UnitsResponse>>(idle());
export const histograms = signal<Loadable<HistogramsResponse>>(idle());
export const runMaps = signal<Loadable<MapsResponse>>(idle());
/** The selected layer's weight and gradient histograms (shown at `histStep`, like the activations). */
export const paramHistograms = signal<Loadable<ParamHistogramsResponse>>(idle());

export const tableData = computed<ModelTableResponse | null>(() => {
  const d = modelTable.value.data;
  return d && d.run === selectedRun.value ? d : null;
});

export const unitData = computed<UnitsResponse | null>(() => {
  const d = unitStats.value.data;
  return d && d.run === selectedRun.value ? d : null;
});

export const unitAlerts = computed<UnitAlert[]>(() => {
  const d = unitData.value;
  return d ? findUnitAlerts(d) : [];
});

/** Names of the layers Insight recorded (rows of the table that open a layer panel). */
export const recordedLayers = computed(() => {
  const info = layers.value.data;
  return new Set(info && info.run === selectedRun.value ? info.layers.map((l) => l.name) : []);
});

/** Layers with recorded CAMs in the selected run. */
export const camLayers = computed(() => {
  const d = runMaps.value.data;
  if (!d || d.run !== selectedRun.value) return new Set<string>();
  return new Set(d.series.filter((s) => s.kind === "cam").map((s) => s.layer));
});

let started = false;

export function startModelLoaders(): void {
  if (started) return;
  started = true;
  const runKey = () => (activeView.value === MODEL_VIEW && selectedRun.value !== null ? [selectedRun.value] : null);
  resource(modelTable, runKey, ([run], signal) => fetchModelTable(run, signal), true);
  // The unit statistics (a read of every layer at every step: the slowest request of a large run)
  // once the model table, the view's index, has arrived: the table is not slowed down by them.
  const unitKey = computed(() => {
    const key = runKey();
    if (key === null) return null;
    const table = modelTable.value;
    return (table.data && table.data.run === key[0]) || table.error ? key[0] : null;
  });
  resource(unitStats, () => (unitKey.value === null ? null : [unitKey.value]), sampledThenExact(([run], signal) => fetchUnits(run, signal)), true);
  resource(runMaps, runKey, ([run], signal) => fetchMaps(run, signal), true);
  const layerKey = computed(() => {
    const run = selectedRun.value;
    const layer = selectedLayer.value;
    if (activeView.value !== MODEL_VIEW || run === null || layer === null) return null;
    return recordedLayers.value.has(layer) ? JSON.stringify([run, layer]) : null;
  });
  resource(
    histograms,
    () => (layerKey.value === null ? null : (JSON.parse(layerKey.value) as [string, string])),
    ([run, layer], signal) => fetchHistograms(run, layer, signal),
    true,
  );
  resource(
    paramHistograms,
    () => (layerKey.value === null ? null : (JSON.parse(layerKey.value) as [string, string])),
    ([run, layer], signal) => fetchParamHistograms(run, layer, signal),
    true,
  );
}
