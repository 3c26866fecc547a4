// Routes of the overlay viewer: the run's map series (CAM and saliency), the probe's predictions,
// and the URL of one step's map sprite. The probe itself is in core/api.ts.
import { DEFAULT_PROBE, getJson, probeParams } from "../../core/api";
import type { MapKind } from "../../generated/fields";

export type { MapKind };

export interface MapSeries {
  kind: MapKind;
  /** Probe name; older backends omit it (then "probe"). */
  probe?: string;
  /** "" for saliency. */
  layer: string;
  method: string;
  auto?: boolean;
  /** CAMs: why this layer was explained (the automatic choice's rule, or "given as cam_layer="); older records omit it. */
  layerReason?: string;
  /** CAMs: how the layer output was read: "nchw", "nhwc", "tokens" or "custom"; older records omit it. */
  layerLayout?: string;
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
