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
  /** A text probe: tokens, no probe images. */
  text?: boolean;
  layers: AttentionLayer[];
}

/** Stored codes q (p = (q / 255)^2), row-major, with their shape (`encoding=u8`). */
export interface U8Codes {
  u8: string;
  shape: number[];
}

export interface AttentionMapsResponse {
  run: string;
  layer: string;
  step: number;
  /** [sample][head][key] */
  maps: U8Codes;
  /** [sample][head][row][key] or null */
  rows: U8Codes | null;
}

/** Decoded codes: probabilities in a flat array and the shape. */
export interface Probs {
  values: Float32Array;
  shape: number[];
}

/** Probabilities of base64 uint8 codes, p = (q / 255)^2. */
export function decodeCodes(codes: U8Codes): Probs {
  const raw = atob(codes.u8);
  const values = new Float32Array(raw.length);
  for (let i = 0; i < raw.length; i++) {
    const q = raw.charCodeAt(i) / 255;
    values[i] = q * q;
  }
  return { values, shape: codes.shape };
}

/** The last-axis vector at leading indices `at` (e.g. [sample, head] of [N][heads][keys]). */
export function vectorAt(p: Probs, at: number[]): number[] {
  const last = p.shape[p.shape.length - 1];
  let offset = 0;
  for (let d = 0; d < at.length; d++) offset = offset * p.shape[d] + at[d];
  offset *= last;
  if (at.some((v, d) => v < 0 || v >= p.shape[d])) return [];
  return Array.from(p.values.subarray(offset, offset + last));
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
  return getJson("attention", { run, layer, step: String(step), probe: DEFAULT_PROBE, encoding: "u8" }, signal);
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
