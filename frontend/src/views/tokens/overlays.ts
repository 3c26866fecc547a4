// The per-token overlays the view can colour the tokens with, and their colours. An overlay is one
// value per token per sequence from the /tokens answer of the shown step. Token saliency gives one
// overlay per method; the attention of a chosen query (attention.ts, read from the attention routes)
// adds one more entry of the same shape, and the mode selector lists them all.
import type { TokensResponse } from "./api";

export interface OverlaySource {
  /** The mode selector's value, e.g. "saliency:grad_x_input". */
  id: string;
  label: string;
  /** Values are signed (for / against the target): coloured red and blue around 0. */
  signed: boolean;
  values: number[][];
}

const LABELS: Record<string, string> = {
  grad_x_input: "Gradient × input",
  integrated_gradients: "Integrated gradients",
};

export function overlaySources(data: TokensResponse): OverlaySource[] {
  return data.overlays
    .filter((o) => o.kind === "saliency" && data.saliency[o.name])
    .map((o) => ({
      id: `saliency:${o.name}`,
      label: LABELS[o.name] ?? o.name,
      signed: true,
      values: data.saliency[o.name],
    }));
}

/** The largest |value| of a row over its real tokens (0 if none). */
export function rowScale(values: readonly number[], mask: readonly number[]): number {
  let m = 0;
  values.forEach((v, i) => {
    if (mask[i] && Number.isFinite(v)) m = Math.max(m, Math.abs(v));
  });
  return m;
}

/** A token's background: red for positive, blue for negative, opacity |v| / scale. */
export function tokenColor(value: number, scale: number, signed: boolean): string {
  if (!Number.isFinite(value) || scale <= 0) return "transparent";
  const a = Math.min(1, Math.abs(value) / scale);
  const rgb = !signed || value >= 0 ? "220, 38, 38" : "37, 99, 235";
  return `rgba(${rgb}, ${(0.85 * a).toFixed(3)})`;
}
