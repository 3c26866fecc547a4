// Routes of the Model view: the model table, the dead/saturated units of every layer, and one layer's
// activation histograms.
import { getJson, matrixRows, type LayerInfo } from "../../core/api";

export type { LayerInfo };

export interface HistogramsResponse {
  run: string;
  layer: string;
  moduleType: string;
  bins: number;
  steps: number[];
  /** The fixed range per recorded step (the same for every step of one watch). */
  low: (number | null)[];
  high: (number | null)[];
  underflow: number[];
  overflow: number[];
  /** counts[stepIndex][bin] */
  counts: number[][];
}

/** One parameter tensor's histograms at its recorded steps; each step has its own edges [low, high]. */
export interface ParamHistogramSeries {
  steps: number[];
  low: (number | null)[];
  high: (number | null)[];
  /** counts[stepIndex][bin] */
  counts: number[][];
}

export interface ParamHistogram {
  /** Qualified as in model.named_parameters(), e.g. "fc.weight". */
  name: string;
  shape: number[];
  weights: ParamHistogramSeries;
  grads: ParamHistogramSeries;
}

export interface ParamHistogramsResponse {
  run: string;
  layer: string;
  moduleType: string;
  bins: number;
  params: ParamHistogram[];
}

export interface UnitLayer {
  name: string;
  moduleType: string;
  order: number;
  bounded: boolean;
}

export interface UnitsResponse {
  run: string;
  /** A sample of the steps (a run the server has not read yet); the next request has every step. */
  sampled?: boolean;
  layers: UnitLayer[];
  steps: number[];
  /** dead[i][j] / saturated[i][j]: layer layers[i] at step steps[j]; null = undefined or missing.
   * Thinned to `max_steps` columns: each column is the maximum over its steps. */
  dead: (number | null)[][];
  saturated: (number | null)[][];
  /** Each layer's first recorded step with a fraction above 0 (over every step); older backends omit it. */
  deadSince?: (number | null)[];
  saturatedSince?: (number | null)[];
  totalSteps?: number;
  channels: (number | null)[];
}

/** A module's output: a shape, a list/dict of outputs, a type name, or null (did not run). */
export type OutputDescription = number[] | OutputDescription[] | { [key: string]: OutputDescription } | string | null;

export interface ModelRow {
  name: string;
  type: string;
  depth: number;
  params: number;
  trainableParams: number;
  ownParams: number;
  watched: boolean;
  output: OutputDescription;
  calls: number;
  /** torchinfo's "Kernel Shape" (null: none); absent in tables written before it existed. */
  kernelSize?: number[] | null;
  /** Mult-adds of the module with its children, and its own; absent in older tables. */
  multAdds?: number;
  ownMultAdds?: number;
}

/** torchinfo's totals block (bytes and counts); absent in tables written before it existed. */
export interface ModelTotals {
  totalParams: number;
  trainableParams: number;
  nonTrainableParams: number;
  totalMultAdds: number;
  inputSizeBytes: number;
  forwardBackwardSizeBytes: number;
  paramsSizeBytes: number;
  estimatedTotalSizeBytes: number;
}

/** Empty `rows` (and null step/modelType/counts) when the run has no model table. */
export interface ModelTableResponse {
  run: string;
  step: number | null;
  modelType: string | null;
  params: number | null;
  trainableParams: number | null;
  rows: ModelRow[];
  totals?: ModelTotals;
}

export function fetchHistograms(run: string, layer: string, signal?: AbortSignal): Promise<HistogramsResponse> {
  return getJson<HistogramsResponse>("histograms", { run, layer }, signal);
}

export function fetchParamHistograms(run: string, layer: string, signal?: AbortSignal): Promise<ParamHistogramsResponse> {
  return getJson<ParamHistogramsResponse>("param_histograms", { run, layer }, signal);
}

/** Columns of the dead/saturated tables (alert sparklines, the layer panel's chart). */
export const UNIT_COLUMNS = 300;

export async function fetchUnits(run: string, signal?: AbortSignal): Promise<UnitsResponse> {
  const params = { run, max_steps: String(UNIT_COLUMNS), encoding: "f32" };
  const body = await getJson<UnitsResponse>("units", params, signal);
  return { ...body, dead: matrixRows(body.dead), saturated: matrixRows(body.saturated) };
}

export function fetchModelTable(run: string, signal?: AbortSignal): Promise<ModelTableResponse> {
  return getJson<ModelTableResponse>("model", { run }, signal);
}
