// Routes of the text-probe view: the run's text probes, and one step of a probe (its sequences, the
// model's predictions, and per-token overlays such as token saliency).
import { DEFAULT_PROBE, getJson } from "../../core/api";

export interface TokenMethod {
  method: string;
  target: string;
  embeddingLayer: string;
  steps: number | null;
  baseline: string | null;
}

export interface TextProbeInfo {
  probe: string;
  numSequences: number;
  length: number;
  /** "classification" or "next_token". */
  task: string;
  classNames: string[] | null;
  steps: number[];
  methods: TokenMethod[];
}

export interface TokenProbesResponse {
  run: string;
  probes: TextProbeInfo[];
}

/** A per-token overlay offered by /tokens: its values are `saliency[name]` for kind "saliency". */
export interface OverlayRef {
  kind: string;
  name: string;
}

export interface TokensResponse {
  run: string;
  probe: string;
  step: number;
  steps: number[];
  task: string;
  classNames: string[] | null;
  tokens: string[][];
  ids: number[][];
  mask: number[][];
  labels: number[] | null;
  labelNames: string[] | null;
  predicted: number[];
  probability: number[];
  predictedNames: string[];
  targets: number[];
  positions: number[] | null;
  saliency: Record<string, number[][]>;
  overlays: OverlayRef[];
}

export function fetchTokenProbes(run: string, signal?: AbortSignal): Promise<TokenProbesResponse> {
  return getJson<TokenProbesResponse>("token_probes", { run }, signal);
}

export function fetchTokens(run: string, probe: string, step: number, signal?: AbortSignal): Promise<TokensResponse> {
  const params: Record<string, string> = { run, step: String(step) };
  if (probe !== DEFAULT_PROBE) params.probe = probe;
  return getJson<TokensResponse>("tokens", params, signal);
}
