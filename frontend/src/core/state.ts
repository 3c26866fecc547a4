// Tab-wide selection and data as signals: the run, the layer, the active view, the heatmap colormap,
// the run and layer lists. Each view keeps its own state in views/<view>/state.ts. Components read
// signals; loaders write them. Canvas code subscribes directly, so the component tree need not re-render.
import { signal, computed } from "@preact/signals";
import { DEFAULT_COLORMAP, type ColormapName } from "../lib/colormaps";
import type { LayersResponse, RunInfo } from "./api";

/** A value loaded from the API: data (kept while refreshing), loading flag, error message. */
export interface Loadable<T> {
  data: T | null;
  loading: boolean;
  error: string | null;
}

export function idle<T>(): Loadable<T> {
  return { data: null, loading: false, error: null };
}

// Selection
export const selectedRun = signal<string | null>(null);
export const selectedLayer = signal<string | null>(null);
/** The colormap of the layer × step heatmaps (statistics, gradients, histograms). */
export const colormap = signal<ColormapName>(DEFAULT_COLORMAP);

/** The view shown in the main area (see app/registry.ts). */
export const activeView = signal<string>("model");

// Environment
export const darkMode = signal(false);
/** Bumped on TensorBoard's reload (experimental.DataReloaded): loaders refetch. */
export const reloadTick = signal(0);

// Data
export const runs = signal<Loadable<RunInfo[]>>(idle());
export const layers = signal<Loadable<LayersResponse>>(idle());

export const layerInfoByName = computed(() => {
  const map = new Map<string, NonNullable<LayersResponse["layers"]>[number]>();
  for (const l of layers.value.data?.layers ?? []) map.set(l.name, l);
  return map;
});
