// Shared selection and data state as signals. Components read them; the loaders in data.ts
// write them. Canvas code subscribes directly, so the component tree need not re-render.
import { signal, computed } from "@preact/signals";
import type { HeatmapResponse, LayerStatsResponse, LayersResponse, RunInfo } from "./api";
import { DEFAULT_COLORMAP, type ColormapName } from "./colormaps";
import type { Normalization } from "./heatmap_math";

export const STATS = ["mean", "std", "min", "max", "zeroFraction", "nanCount", "infCount"] as const;
export type StatName = (typeof STATS)[number];
export const DEFAULT_STAT: StatName = "mean";

export const STAT_LABELS: Record<string, string> = {
  mean: "Mean",
  std: "Std deviation",
  min: "Min",
  max: "Max",
  zeroFraction: "Zero fraction",
  nanCount: "NaN count",
  infCount: "Inf count",
};

export function isStatName(s: string): s is StatName {
  return (STATS as readonly string[]).includes(s);
}

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
export const selectedStat = signal<StatName>(DEFAULT_STAT);
export const selectedLayer = signal<string | null>(null);
export const colormap = signal<ColormapName>(DEFAULT_COLORMAP);
export const normalization = signal<Normalization>("row");

/** The view shown in the main area (see views/registry.ts). */
export const activeView = signal<string>("model");

// Environment
export const darkMode = signal(false);
/** Bumped on TensorBoard's reload (experimental.DataReloaded): loaders refetch. */
export const reloadTick = signal(0);

// Data
export const runs = signal<Loadable<RunInfo[]>>(idle());
export const layers = signal<Loadable<LayersResponse>>(idle());
export const heatmap = signal<Loadable<HeatmapResponse>>(idle());
export const layerStats = signal<Loadable<LayerStatsResponse>>(idle());

/** Statistics offered by the picker: the fixed list, narrowed to what the run recorded. */
export const availableStats = computed<StatName[]>(() => {
  const recorded = layers.value.data?.stats;
  if (!recorded || !recorded.length) return [...STATS];
  const narrowed = STATS.filter((s) => recorded.includes(s));
  return narrowed.length ? narrowed : [...STATS];
});

export const layerInfoByName = computed(() => {
  const map = new Map<string, NonNullable<LayersResponse["layers"]>[number]>();
  for (const l of layers.value.data?.layers ?? []) map.set(l.name, l);
  return map;
});
