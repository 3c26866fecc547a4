// Routes of the rank view (docs/http-api.md, "Rank comparison"): families, the spread across ranks,
// one layer on every rank, and the ranks that depart from the others.
import { getJson, matrixRows, type F32Matrix } from "../../core/api";

export type RankKind = "activation" | "gradient";

export interface RankFamily {
  family: string;
  ranks: number[];
  runs: string[];
  maxSteps: number[];
  numLayers: number[];
}

interface FamilyPart {
  family: string;
  kind?: RankKind;
  ranks: number[];
  runs: string[];
  lastSteps: (number | null)[];
}

type Matrix = (number | null)[][];

export interface RankSpreadResponse extends FamilyPart {
  stat: string;
  layers: { name: string; moduleType: string }[];
  steps: number[];
  totalSteps: number;
  low: Matrix;
  median: Matrix;
  high: Matrix;
  /** The largest deviation of any rank (null: fewer than three ranks with a value). */
  deviation: Matrix;
  relativeSpread: Matrix;
}

export interface RankLayerResponse extends FamilyPart {
  stat: string;
  layer: string;
  moduleType: string;
  steps: number[];
  /** values[r][j]: rank ranks[r] at steps[j]. */
  values: Matrix;
  median: (number | null)[];
  deviation: Matrix;
}

export interface RankAlert {
  rank: number;
  run: string;
  kind: RankKind;
  layer: string;
  moduleType: string;
  stat: string;
  firstStep: number;
  lastStep: number;
  steps: number;
  value: number | null;
  median: number | null;
  deviation: number | null;
}

export interface RankAlertsResponse extends FamilyPart {
  threshold: number;
  sustain: number;
  named: boolean;
  checked: Record<RankKind, string[]>;
  departingRanks: { rank: number; run: string; alerts: number; firstStep: number; layers: number; stats: string[] }[];
  totalAlerts: number;
  alerts: RankAlert[];
}

export function fetchRankFamilies(signal?: AbortSignal): Promise<{ families: RankFamily[] }> {
  return getJson("rank_families", {}, signal);
}

export async function fetchRankSpread(family: string, kind: RankKind, stat: string, maxSteps: number, signal?: AbortSignal): Promise<RankSpreadResponse> {
  const params = { family, kind, stat, max_steps: String(maxSteps), encoding: "f32" };
  const body = await getJson<Record<string, unknown>>("rank_spread", params, signal);
  const m = (k: string) => matrixRows(body[k] as F32Matrix);
  return {
    ...(body as unknown as RankSpreadResponse),
    low: m("low"),
    median: m("median"),
    high: m("high"),
    deviation: m("deviation"),
    relativeSpread: m("relativeSpread"),
  };
}

export function fetchRankLayer(family: string, kind: RankKind, stat: string, layer: string, signal?: AbortSignal): Promise<RankLayerResponse> {
  return getJson("rank_layer", { family, kind, stat, layer }, signal);
}

export function fetchRankAlerts(family: string, threshold: number, sustain: number, signal?: AbortSignal): Promise<RankAlertsResponse> {
  return getJson("rank_alerts", { family, threshold: String(threshold), sustain: String(sustain) }, signal);
}
