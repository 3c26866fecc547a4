// State of transformer health in the statistics view: the alert thresholds (in the deep link), the
// run's alerts and the selected layer's health over steps.
import { computed, signal } from "@preact/signals";
import { resource } from "../../core/resource";
import { activeView, idle, layers, selectedLayer, selectedRun, type Loadable } from "../../core/state";
import { numberParam, type ViewUrlState } from "../../lib/urlstate";
import { fetchHealthAlerts, fetchLayerHealth, type HealthAlertsResponse, type LayerHealthResponse } from "./health_api";

/** A threshold of /health_alerts: its query name, deep-link key, default, range and what it means. */
export interface HealthThreshold {
  param: string;
  urlKey: string;
  label: string;
  defaultValue: number;
  min: number;
  max: number;
  help: string;
}

/** The card's threshold fields. A new alert source's threshold (attention entropy, logit growth) is one
 * entry here and one in plugin/health_alerts.py's THRESHOLDS (same `param`); its alerts need nothing more. */
export const HEALTH_THRESHOLDS: HealthThreshold[] = [
  {
    param: "massive_ratio",
    urlKey: "health.massive",
    label: "Massive: peak / median channel peak above",
    defaultValue: 100,
    min: 1.0001,
    max: 1e9,
    help: "Sun et al. 2024 (Massive Activations in LLMs): hidden dimensions 100–10,000× the typical magnitude",
  },
  {
    param: "peak_rms",
    urlKey: "health.peakRms",
    label: "Peak-to-RMS above",
    defaultValue: 100,
    min: 1.0001,
    max: 1e9,
    help: "max |a| / RMS of a layer; light-tailed values stay below ~8 at any tensor size (Gaussian: √(2 ln n))",
  },
  {
    param: "entropy_min",
    urlKey: "health.entropyMin",
    label: "Attention entropy below",
    defaultValue: 0.1,
    min: 0.0001,
    max: 1,
    help: "normalised attention entropy of a head on the probe (1: uniform, 0: one key); Zhai et al. 2023, attention entropy collapse",
  },
  {
    param: "logit_growth",
    urlKey: "health.logitGrowth",
    label: "Attention max logit grows above ×",
    defaultValue: 10,
    min: 1.0001,
    max: 1e9,
    help: "a head's max pre-softmax logit over its first recorded value; Wortsman et al. 2023, attention-logit growth",
  },
];

export const healthThresholds = signal<Record<string, number>>(
  Object.fromEntries(HEALTH_THRESHOLDS.map((t) => [t.param, t.defaultValue])),
);

export const healthAlerts = signal<Loadable<HealthAlertsResponse>>(idle());
export const layerHealth = signal<Loadable<LayerHealthResponse>>(idle());

let started = false;

/** Loaders of the statistics view's health parts (only while that view shows). */
export function startHealthLoaders(statsView: string): void {
  if (started) return;
  started = true;
  resource(
    healthAlerts,
    (): [string, Record<string, number>] | null =>
      activeView.value !== statsView || selectedRun.value === null ? null : [selectedRun.value, healthThresholds.value],
    ([run, thresholds], signal) => fetchHealthAlerts(run, thresholds, signal),
    true,
  );
  const layerKey = computed(() => {
    const run = selectedRun.value;
    const layer = selectedLayer.value;
    const info = layers.value.data;
    if (activeView.value !== statsView || run === null || layer === null || !info || info.run !== run) return null;
    return info.layers.some((l) => l.name === layer) ? JSON.stringify([run, layer]) : null;
  });
  resource(
    layerHealth,
    () => (layerKey.value === null ? null : (JSON.parse(layerKey.value) as [string, string])),
    ([run, layer], signal) => fetchLayerHealth(run, layer, signal),
    true,
  );
}

function apply(url: Record<string, string>): void {
  const next = { ...healthThresholds.value };
  for (const t of HEALTH_THRESHOLDS) {
    const v = numberParam(url[t.urlKey], t.min, t.max);
    if (v !== null) next[t.param] = v;
  }
  healthThresholds.value = next;
}

function state(): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  for (const t of HEALTH_THRESHOLDS) {
    const v = healthThresholds.value[t.param];
    out[t.urlKey] = v === t.defaultValue ? null : String(v);
  }
  return out;
}

/** The statistics view's part of the deep link: the health thresholds. */
export const healthUrlState: ViewUrlState = { apply, state };
