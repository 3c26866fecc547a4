// Typed client for the Insight plugin's HTTP API (docs/http-api.md): the request and
// error handling every view uses, the run and layer lists, and the probe. Each view's own routes are in
// its folder (views/<view>/api.ts).
// Every route is relative to the iframe's <base href="plugin/insight/">, so --path_prefix and
// /experiment/<id>/ prefixes work unchanged.

import { DEFAULT_PROBE } from "../generated/fields";

export { DEFAULT_PROBE };

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

// ---- The probe: a fixed batch of images that the maps and feature maps are computed on ----

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

/** Query parameters naming a run's probe (the default probe is not named). */
export function probeParams(run: string, probe: string): Record<string, string> {
  return probe === DEFAULT_PROBE ? { run } : { run, probe };
}

export function fetchProbe(run: string, probe: string = DEFAULT_PROBE, signal?: AbortSignal): Promise<ProbeResponse> {
  return getJson<ProbeResponse>("probe", probeParams(run, probe), signal);
}

/** URL of the probe's RGB sprite (relative to the plugin base, like every route). */
export function probeImageUrl(run: string, probe: string = DEFAULT_PROBE): string {
  return "./probe_image?" + new URLSearchParams(probeParams(run, probe)).toString();
}

