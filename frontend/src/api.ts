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

async function getJson<T>(
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

export function fetchRuns(signal?: AbortSignal): Promise<RunsResponse> {
  return getJson<RunsResponse>("runs", {}, signal);
}

export function fetchLayers(run: string, signal?: AbortSignal): Promise<LayersResponse> {
  return getJson<LayersResponse>("layers", { run }, signal);
}

export function fetchHeatmap(run: string, stat: string, signal?: AbortSignal): Promise<HeatmapResponse> {
  return getJson<HeatmapResponse>("stats_heatmap", { run, stat }, signal);
}

export function fetchLayerStats(run: string, layer: string, signal?: AbortSignal): Promise<LayerStatsResponse> {
  return getJson<LayerStatsResponse>("layer_stats", { run, layer }, signal);
}
