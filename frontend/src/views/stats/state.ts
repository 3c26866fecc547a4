// State of the activation-statistics view: the heatmap's statistic and scaling, the heatmap and the
// selected layer's statistics over steps (also shown by the Model view's layer panel).
import { computed, signal } from "@preact/signals";
import { resource, sampledThenExact } from "../../core/resource";
import { activeView, idle, layers, selectedLayer, selectedRun, type Loadable } from "../../core/state";
import { STAT_FIELDS, type StatField } from "../../generated/fields";
import type { Normalization } from "../../lib/heatmap_math";
import { initialFold, type Aggregate, type FoldState } from "../../lib/layer_groups";
import { fetchHeatmap, fetchLayerStats, type HeatmapResponse, type LayerStatsResponse } from "./api";
import { healthAlerts, startHealthLoaders } from "./health_state";

/** The view that shows the activation-statistics heatmap (app/registry.ts). */
export const STATS_VIEW = "stats";

/** Transformer-health numbers the heatmap can also colour (/stats_heatmap; offered per run by /health_alerts). */
export const HEALTH_STATS = ["peakToRms", "massiveCount"] as const;
export type HealthStat = (typeof HEALTH_STATS)[number];

export type StatName = Exclude<StatField, "numel"> | HealthStat;
/** Statistics the heatmap can colour: every stored one but `numel` (the tensor's size), then health numbers. */
export const STATS: StatName[] = [...STAT_FIELDS.filter((s): s is Exclude<StatField, "numel"> => s !== "numel"), ...HEALTH_STATS];
export const DEFAULT_STAT: StatName = "mean";

export const STAT_LABELS: Record<StatName, string> = {
  mean: "Mean",
  std: "Std deviation",
  min: "Min",
  max: "Max",
  zeroFraction: "Zero fraction",
  nanCount: "NaN count",
  infCount: "Inf count",
  peakToRms: "Peak-to-RMS ratio",
  massiveCount: "Massive activations (count)",
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
  peakToRms: "max",
  massiveCount: "max",
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

/** Statistics offered by the picker: the fixed list, narrowed to what the run recorded (the health
 * numbers: to what /health_alerts says the run has). */
export const availableStats = computed<StatName[]>(() => {
  const recorded = layers.value.data?.stats;
  const health = healthAlerts.value.data;
  const offered = health && health.run === selectedRun.value ? health.offered : ["peakToRms"];
  const stored = STATS.filter((s) => !(HEALTH_STATS as readonly string[]).includes(s));
  const narrowed = recorded && recorded.length ? stored.filter((s) => recorded.includes(s)) : stored;
  const extra = HEALTH_STATS.filter((s) => offered.includes(s));
  return [...(narrowed.length ? narrowed : stored), ...extra];
});

let started = false;

export function startStatsLoaders(): void {
  if (started) return;
  started = true;
  startHealthLoaders(STATS_VIEW);
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
