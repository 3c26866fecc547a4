// Client of the attention routes (docs/http-api.md, "Attention"): the modules with attention maps, one
// step's maps (probabilities), and attention health over steps with its alerts.
import { DEFAULT_PROBE, getJson } from "../../core/api";

export interface AttentionLayer {
  layer: string;
  moduleType: string;
  order: number;
  shape: number[];
  heads: number;
  numQueries: number;
  numKeys: number;
  causal: boolean;
  /** Whose attention `maps` holds: "first" (class token), "last" (causal), "mean" or "index". */
  queryRule: string;
  queryIndex: number;
  gridSide: number;
  classTokens: number;
  numImages: number;
  /** Every query's attention for the first numSamples samples, query q pooled into row queryBlocks[q]. */
  rows: { numSamples: number; queryBlocks: number[] } | null;
  steps: number[];
}

export interface AttentionLayersResponse {
  run: string;
  probe: string;
  layers: AttentionLayer[];
}

export interface AttentionMapsResponse {
  run: string;
  layer: string;
  step: number;
  /** [sample][head][key] */
  maps: number[][][];
  /** [sample][head][row][key] or null */
  rows: number[][][][] | null;
}

export interface AttentionAlert {
  kind: "entropy_collapse" | "logit_growth";
  layer: string;
  head: number;
  first_step: number;
  value: number;
  threshold: number;
}

export interface AttentionStatsResponse {
  run: string;
  steps: number[];
  layers: { layer: string; heads: number }[];
  /** [layer][head][step index], null where not recorded */
  entropy: (number | null)[][][];
  maxLogit: (number | null)[][][];
  alerts: AttentionAlert[];
  thresholds: { entropyMin: number; logitGrowth: number };
}

export function fetchAttentionLayers(run: string, signal?: AbortSignal): Promise<AttentionLayersResponse> {
  return getJson("attention_layers", { run, probe: DEFAULT_PROBE }, signal);
}

export function fetchAttentionMaps(run: string, layer: string, step: number, signal?: AbortSignal): Promise<AttentionMapsResponse> {
  return getJson("attention", { run, layer, step: String(step), probe: DEFAULT_PROBE }, signal);
}

export function fetchAttentionStats(
  run: string,
  entropyMin: number,
  logitGrowth: number,
  signal?: AbortSignal,
): Promise<AttentionStatsResponse> {
  return getJson(
    "attention_stats",
    { run, probe: DEFAULT_PROBE, entropy_min: String(entropyMin), logit_growth: String(logitGrowth) },
    signal,
  );
}
