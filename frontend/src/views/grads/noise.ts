// The gradient noise scale of a distributed run (route /gradient_noise, metadata.NOISE_FIELDS): each step's
// unbiased estimates of tr(Σ) and |G|² are noisy (the |G|² estimate can even be negative), so the view
// shows the ratio of their exponential moving averages, as McCandlish et al. (2018) recommend.
import { getJson } from "../../core/api";
import type { GradientsResponse } from "./api";

/** The whole model's row of the noise records. */
export const MODEL_ROW = "(model)";
/** Weight of the newest step in the moving averages. */
export const NOISE_SMOOTHING = 0.2;

export async function fetchGradientNoise(run: string, signal?: AbortSignal): Promise<GradientsResponse> {
  return getJson<GradientsResponse>("gradient_noise", { run, fields: "traceSigma,gradSq,noiseScale,batchBig" }, signal);
}

/**
 * B_simple = EMA(tr Σ) / EMA(|G|²) at each step (null before the first step with both values, and where
 * the smoothed |G|² is not positive: no estimate yet). Steps without values leave the averages as they are.
 */
export function smoothedNoiseScale(
  trace: readonly (number | null)[],
  gradSq: readonly (number | null)[],
  alpha = NOISE_SMOOTHING,
): (number | null)[] {
  let t: number | null = null;
  let g: number | null = null;
  return trace.map((tv, i) => {
    const gv = gradSq[i];
    if (typeof tv === "number" && typeof gv === "number") {
      t = t === null ? tv : (1 - alpha) * t + alpha * tv;
      g = g === null ? gv : (1 - alpha) * g + alpha * gv;
    }
    return t !== null && g !== null && g > 0 && t / g > 0 ? t / g : null;
  });
}
