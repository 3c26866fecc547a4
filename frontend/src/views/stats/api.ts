// Routes of the activation-statistics view: the layer × step heatmap and one layer's statistics.
import { getJson, matrixRows } from "../../core/api";

export interface HeatmapResponse {
  run: string;
  stat: string;
  layers: string[];
  steps: number[];
  /** Recorded steps before thinning to max_steps columns; older backends omit it. */
  totalSteps?: number;
  /** The first answer on a run not read yet: a sample of its steps (ask again for the exact columns). */
  sampled?: boolean;
  /** values[i][j]: layer layers[i] at step steps[j]; null = no record or not finite. */
  values: (number | null)[][];
}

export interface LayerStatsResponse {
  run: string;
  /** A sample of the steps (a run the server has not read yet); the next request has every step. */
  sampled?: boolean;
  layer: string;
  moduleType: string;
  shape: number[] | null;
  steps: number[];
  wallTimes: number[];
  stats: Record<string, (number | null)[]>;
}


/** Columns of the layer × step heatmap: longer runs are thinned by the server (NaN/Inf counts kept). */
export const HEATMAP_COLUMNS = 300;

export async function fetchHeatmap(run: string, stat: string, signal?: AbortSignal): Promise<HeatmapResponse> {
  const params = { run, stat, max_steps: String(HEATMAP_COLUMNS), encoding: "f32" };
  const body = await getJson<HeatmapResponse>("stats_heatmap", params, signal);
  return { ...body, values: matrixRows(body.values) };
}

export function fetchLayerStats(run: string, layer: string, signal?: AbortSignal): Promise<LayerStatsResponse> {
  return getJson<LayerStatsResponse>("layer_stats", { run, layer }, signal);
}
