// Routes of transformer health (docs/http-api.md#transformer-health): the run's alerts, thresholds
// given as query parameters, and one layer's peak-to-RMS ratio and massive activations over steps.
import { getJson } from "../../core/api";

/** One alert, as every source of /health_alerts writes it (massive activations, peak-to-RMS, attention…). */
export interface HealthAlert {
  kind: string;
  layer: string;
  head: number | null;
  first_step: number;
  value: number;
  threshold: number;
  last_step?: number;
  steps?: number;
  channels?: number[];
  /** Attention alerts: the probe the attention was measured on. */
  probe?: string;
}

export interface HealthAlertsResponse {
  run: string;
  thresholds: Record<string, number>;
  alerts: HealthAlert[];
  /** The health numbers the run has for the statistics heatmap. */
  offered: string[];
}

export interface LayerHealthResponse {
  run: string;
  layer: string;
  steps: number[];
  peakToRms: (number | null)[];
  massiveCount?: (number | null)[];
  massive?: { ratio: number; channels: number[][]; topRatio: (number | null)[] };
}

export function fetchHealthAlerts(
  run: string,
  thresholds: Record<string, number>,
  signal?: AbortSignal,
): Promise<HealthAlertsResponse> {
  const params: Record<string, string> = { run };
  for (const [k, v] of Object.entries(thresholds)) params[k] = String(v);
  return getJson<HealthAlertsResponse>("health_alerts", params, signal);
}

export function fetchLayerHealth(run: string, layer: string, signal?: AbortSignal): Promise<LayerHealthResponse> {
  return getJson<LayerHealthResponse>("layer_health", { run, layer }, signal);
}
