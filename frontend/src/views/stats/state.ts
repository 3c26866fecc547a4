// State of the activation-statistics view: the heatmap's statistic and scaling, the heatmap and the
// selected layer's statistics over steps (also shown by the Model view's layer panel).
import { computed, signal } from "@preact/signals";
import { resource, sampledThenExact } from "../../core/resource";
import { activeView, idle, layers, selectedLayer, selectedRun, type Loadable } from "../../core/state";
import { STAT_FIELDS, type StatField } from "../../generated/fields";
import type { Normalization } from "../../lib/heatmap_math";
import { initialFold, type Aggregate, type FoldState } from "../../lib/layer_groups";
import { fetchHeatmap, fetchLayerStats, type HeatmapResponse, type LayerStatsResponse } from "./api";

/** The view that shows the activation-statistics heatmap (app/registry.ts). */
export const STATS_VIEW = "stats";

export type StatName = Exclude<StatField, "numel">;
/** Statistics the heatmap can colour: every stored one but `numel` (the tensor's size). */
export const STATS = STAT_FIELDS.filter((s): s is StatName => s !== "numel");
export const DEFAULT_STAT: StatName = "mean";

export const STAT_LABELS: Record<StatName, string> = {
  mean: "Mean",
  std: "Std deviation",
  min: "Min",
  max: "Max",
  zeroFraction: "Zero fraction",
  nanCount: "NaN count",
  infCount: "Inf count",
};

/** How a folded group of layers combines each statistic per step: extremes and counts by their max (min),
 * averages by their mean. */
export const STAT_AGGREGATE: Record<StatName, Aggregate> = {
  mean: "mean",
  std: "mean",
  min: "min",
  max: "max",
  zeroFraction: "mean",
  nanCount: "max",
  infCount: "max",
};

export function isStatName(s: string): s is StatName {
  return (STATS as readonly string[]).includes(s);
}

// Selection
export const selectedStat = signal<StatName>(DEFAULT_STAT);
export const normalization = signal<Normalization>("row");
/** How the heatmap's rows group by module: fold depth, per-group overrides, filter. */
export const statsFold = signal<FoldState>(initialFold());

// Data
export const heatmap = signal<Loadable<HeatmapResponse>>(idle());
export const layerStats = signal<Loadable<LayerStatsResponse>>(idle());

/** Statistics offered by the picker: the fixed list, narrowed to what the run recorded. */
export const availableStats = computed<StatName[]>(() => {
  const recorded = layers.value.data?.stats;
  if (!recorded || !recorded.length) return [...STATS];
  const narrowed = STATS.filter((s) => recorded.includes(s));
  return narrowed.length ? narrowed : [...STATS];
});

let started = false;

export function startStatsLoaders(): void {
  if (started) return;
  started = true;
  // Only while the statistics view shows it (the Model view, the default, does not).
  resource(
    heatmap,
    () => (activeView.value !== STATS_VIEW || selectedRun.value === null ? null : [selectedRun.value, selectedStat.value]),
    sampledThenExact(([run, stat], signal) => fetchHeatmap(run, stat, signal)),
    true,
  );

  // Only ask for a layer's stats once the run's layer list confirms the layer exists. The key is
  // a computed string, so refreshing the layer list on reload does not trigger a second fetch.
  const layerStatsKey = computed(() => {
    const run = selectedRun.value;
    const layer = selectedLayer.value;
    const info = layers.value.data;
    if (run === null || layer === null || !info || info.run !== run) return null;
    return info.layers.some((l) => l.name === layer) ? JSON.stringify([run, layer]) : null;
  });
  resource(
    layerStats,
    () => (layerStatsKey.value === null ? null : (JSON.parse(layerStatsKey.value) as [string, string])),
    sampledThenExact(([run, layer], signal) => fetchLayerStats(run, layer, signal)),
    true,
  );
}
