// Typed client for the Insight plugin's HTTP API (tb_plugin_insight/plugin/http_api.md).
// Every route is relative to the iframe's <base href="plugin/insight/">, so --path_prefix and
// /experiment/<id>/ prefixes work unchanged.

export interface RunInfo {
  run: string;
  numLayers: number;
  maxStep: number;
}

export interface RunsResponse {
  runs: RunInfo[];
}

export interface LayerInfo {
  name: string;
  moduleType: string;
  shape: number[] | null;
  order: number;
  /** Optional: older backends omit it. */
  numSteps?: number;
  maxStep?: number;
}

export interface LayersResponse {
  run: string;
  stats: string[];
  layers: LayerInfo[];
}

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
  layer: string;
  moduleType: string;
  shape: number[] | null;
  steps: number[];
  wallTimes: number[];
  stats: Record<string, (number | null)[]>;
}

/** An API failure with the server's `{"error": {"code", "message"}}` body, or a network error. */
export class ApiError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }
}

function errorMessage(body: unknown): string | null {
  if (body && typeof body === "object" && "error" in body) {
    const err = (body as { error: unknown }).error;
    if (err && typeof err === "object" && "message" in err) {
      const msg = (err as { message: unknown }).message;
      if (typeof msg === "string") return msg;
    }
  }
  return null;
}

export async function getJson<T>(
  route: string,
  params: Record<string, string> = {},
  signal?: AbortSignal,
): Promise<T> {
  const query = new URLSearchParams(params).toString();
  const url = "./" + route + (query ? "?" + query : "");
  let response: Response;
  try {
    response = await fetch(url, { signal, headers: { Accept: "application/json" } });
  } catch (e) {
    if (e instanceof DOMException && e.name === "AbortError") throw e;
    throw new ApiError(0, `Could not reach TensorBoard (${route}): ${String(e)}`);
  }
  const text = await response.text();
  let body: unknown = undefined;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    // Not JSON (e.g. a proxy's HTML error page); handled below.
  }
  if (!response.ok) {
    const msg = errorMessage(body) ?? (text.trim().slice(0, 300) || response.statusText);
    throw new ApiError(response.status, msg);
  }
  if (body === undefined) {
    throw new ApiError(response.status, `Unexpected non-JSON response from ${route}`);
  }
  return body as T;
}

/** A matrix sent as base64 little-endian float32 (`encoding=f32`); NaN marks a missing value. */
export interface F32Matrix {
  f32: string;
  shape: number[];
}

export function isF32Matrix(v: unknown): v is F32Matrix {
  return typeof v === "object" && v !== null && typeof (v as F32Matrix).f32 === "string" && Array.isArray((v as F32Matrix).shape);
}

/** The float32 values of an encoded matrix, row-major. */
export function decodeF32(m: F32Matrix): Float32Array {
  const text = atob(m.f32);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  const expected = m.shape.reduce((a, b) => a * b, 1);
  if (bytes.length !== expected * 4) throw new ApiError(0, `Malformed f32 matrix: ${bytes.length} bytes for shape [${m.shape.join(", ")}]`);
  return new Float32Array(bytes.buffer);
}

/** A (rows × columns) matrix as nested rows, null where not finite (the JSON encoding's shape). */
export function matrixRows(m: F32Matrix | (number | null)[][]): (number | null)[][] {
  if (!isF32Matrix(m)) return m;
  const values = decodeF32(m);
  const [rows, cols] = m.shape.length === 2 ? m.shape : [0, 0];
  const out: (number | null)[][] = new Array(rows);
  for (let i = 0; i < rows; i++) {
    const row: (number | null)[] = new Array(cols);
    for (let j = 0; j < cols; j++) {
      const v = values[i * cols + j];
      row[j] = Number.isFinite(v) ? v : null;
    }
    out[i] = row;
  }
  return out;
}

export function fetchRuns(signal?: AbortSignal): Promise<RunsResponse> {
  return getJson<RunsResponse>("runs", {}, signal);
}

export function fetchLayers(run: string, signal?: AbortSignal): Promise<LayersResponse> {
  return getJson<LayersResponse>("layers", { run }, signal);
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

// ---- Gradient flow ----

/** Stored gradient statistics per layer and step (metadata.GRAD_FIELDS). */
export const GRAD_FIELDS = [
  "gradNorm",
  "gradMeanAbs",
  "gradMaxAbs",
  "gradNanCount",
  "gradInfCount",
  "gradNumel",
  "weightNorm",
  "updateRatio",
  "actGradNorm",
  "actGradNanCount",
  "actGradInfCount",
  "actGradNumel",
] as const;
export type GradField = (typeof GRAD_FIELDS)[number];

export interface GradientLayer {
  name: string;
  moduleType: string;
  shape: number[] | null;
  order: number;
}

export interface GradientsResponse {
  run: string;
  fields: string[];
  layers: GradientLayer[];
  steps: number[];
  /** Recorded steps before thinning (max_steps) or step selection; older backends omit it. */
  totalSteps?: number;
  /** values[field][i][j]: layer layers[i] at step steps[j]; null = no record or not finite. */
  values: Record<string, (number | null)[][]>;
}

/** Only what a view shows: one layer, one step (at or before), or at most `maxSteps` columns. */
export interface GradientsQuery {
  fields?: readonly string[];
  layer?: string;
  step?: number;
  maxSteps?: number;
}

export async function fetchGradients(run: string, query: GradientsQuery = {}, signal?: AbortSignal): Promise<GradientsResponse> {
  const params: Record<string, string> = { run, encoding: "f32" };
  if (query.fields?.length) params.fields = query.fields.join(",");
  if (query.layer !== undefined) params.layer = query.layer;
  if (query.step !== undefined) params.step = String(query.step);
  if (query.maxSteps !== undefined) params.max_steps = String(query.maxSteps);
  const body = await getJson<GradientsResponse>("gradients", params, signal);
  const values: GradientsResponse["values"] = {};
  for (const [field, m] of Object.entries(body.values ?? {})) values[field] = matrixRows(m);
  return { ...body, values };
}

// ---- Probe images and maps (CAM overlays and saliency) ----

export type MapKind = "cam" | "saliency";

export interface ProbeResponse {
  run: string;
  /** Probe name; older backends omit it (then "probe"). */
  probe?: string;
  numImages: number;
  height: number;
  width: number;
  step: number;
  labels: number[] | null;
  classNames: string[] | null;
  imageUrl?: string;
}

export interface MapSeries {
  kind: MapKind;
  /** Probe name; older backends omit it (then "probe"). */
  probe?: string;
  /** "" for saliency. */
  layer: string;
  method: string;
  auto?: boolean;
  height: number;
  width: number;
  numImages: number;
  steps: number[];
  /**
   * Optional (not in the contract yet): each image's raw map range before the per-image
   * normalisation, `[stepIndex][image]`, used by the "shared scale" normalisation.
   */
  rawMin?: (number[] | null)[];
  rawMax?: (number[] | null)[];
}

export interface MapsResponse {
  run: string;
  series: MapSeries[];
}

export interface PredictionsResponse {
  run: string;
  probe?: string;
  steps: number[];
  /** predicted[stepIndex][image]; a row may be null when unknown. */
  predicted: ((number | null)[] | null)[];
  probability: ((number | null)[] | null)[];
}

export const DEFAULT_PROBE = "probe";

function probeParams(run: string, probe: string): Record<string, string> {
  return probe === DEFAULT_PROBE ? { run } : { run, probe };
}

export function fetchProbe(run: string, probe: string = DEFAULT_PROBE, signal?: AbortSignal): Promise<ProbeResponse> {
  return getJson<ProbeResponse>("probe", probeParams(run, probe), signal);
}

export function fetchMaps(run: string, signal?: AbortSignal): Promise<MapsResponse> {
  return getJson<MapsResponse>("maps", { run }, signal);
}

export function fetchPredictions(
  run: string,
  probe: string = DEFAULT_PROBE,
  signal?: AbortSignal,
): Promise<PredictionsResponse> {
  return getJson<PredictionsResponse>("predictions", probeParams(run, probe), signal);
}

/** URL of the probe's RGB sprite (relative to the plugin base, like every route). */
export function probeImageUrl(run: string, probe: string = DEFAULT_PROBE): string {
  return "./probe_image?" + new URLSearchParams(probeParams(run, probe)).toString();
}

/** URL of one step's grayscale map sprite. */
export function mapImageUrl(
  run: string,
  series: { kind: MapKind; layer: string; method: string; probe?: string },
  step: number,
): string {
  const params: Record<string, string> = { run, kind: series.kind, layer: series.layer, method: series.method, step: String(step) };
  const probe = series.probe ?? DEFAULT_PROBE;
  if (probe !== DEFAULT_PROBE) params.probe = probe;
  return "./map_image?" + new URLSearchParams(params).toString();
}

/** Fetch a binary resource (PNG sprite) with the same error handling as the JSON routes. */
export async function fetchBlob(url: string, signal?: AbortSignal): Promise<Blob> {
  let response: Response;
  try {
    response = await fetch(url, { signal });
  } catch (e) {
    if (e instanceof DOMException && e.name === "AbortError") throw e;
    throw new ApiError(0, `Could not reach TensorBoard (${url}): ${String(e)}`);
  }
  if (!response.ok) {
    const text = await response.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    throw new ApiError(response.status, errorMessage(body) ?? (text.trim().slice(0, 300) || response.statusText));
  }
  return response.blob();
}

// ---- Inside each layer: histograms, dead/saturated units, the model table ----

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

export interface UnitLayer {
  name: string;
  moduleType: string;
  order: number;
  bounded: boolean;
}

export interface UnitsResponse {
  run: string;
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
}

/** Empty `rows` (and null step/modelType/counts) when the run has no model table. */
export interface ModelTableResponse {
  run: string;
  step: number | null;
  modelType: string | null;
  params: number | null;
  trainableParams: number | null;
  rows: ModelRow[];
}

export function fetchHistograms(run: string, layer: string, signal?: AbortSignal): Promise<HistogramsResponse> {
  return getJson<HistogramsResponse>("histograms", { run, layer }, signal);
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
