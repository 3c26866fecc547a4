// The tokens view's attention overlay: per text-probe sequence, the attention of the chosen query
// (a causal model's last real token, an encoder's [CLS]; or a clicked token where per-query rows are
// stored) to every token, for one attention module and head, at the attention step at or before the
// shown step. Read from the attention routes (/attention_layers, /attention) under the probe's name.
import { computed, signal } from "@preact/signals";
import { getJson } from "../../core/api";
import { resource } from "../../core/resource";
import { activeView, idle, selectedRun, type Loadable } from "../../core/state";
import { decodeCodes, vectorAt, type AttentionLayer, type AttentionLayersResponse, type AttentionMapsResponse, type Probs } from "../attn/api";
import { queryRow } from "../attn/math";
import type { TokensResponse } from "./api";
import type { OverlaySource } from "./overlays";
import { probeInfo, shownStep, tokenOverlay, TOKENS_VIEW } from "./state";

export const ATTENTION_OVERLAY = "attention";

export const tokenAttnLayers = signal<Loadable<AttentionLayersResponse>>(idle());
export const tokenAttnMaps = signal<Loadable<AttentionMapsResponse>>(idle());
/** The chosen module (null: the first), head, and clicked query (sequence, token) or null. */
export const attnLayer = signal<string | null>(null);
export const attnHead = signal(0);
export const attnQuery = signal<{ row: number; pos: number } | null>(null);

export const shownAttnLayer = computed<AttentionLayer | null>(() => {
  const layers = tokenAttnLayers.value.data?.layers ?? [];
  return layers.find((l) => l.layer === attnLayer.value) ?? layers[0] ?? null;
});

/** The attention step shown: the latest one at or before the tokens step (else the first). */
export const attnStep = computed<number | null>(() => {
  const steps = shownAttnLayer.value?.steps ?? [];
  const step = shownStep.value;
  if (!steps.length || step === null) return null;
  const before = steps.filter((s) => s <= step);
  return before.length ? before[before.length - 1] : steps[0];
});

const decoded = computed<{ maps: Probs; rows: Probs | null } | null>(() => {
  const d = tokenAttnMaps.value.data;
  return d ? { maps: decodeCodes(d.maps), rows: d.rows ? decodeCodes(d.rows) : null } : null;
});

/** The default query's position in sequence `row`, or null for the mean over queries. */
export function defaultQuery(layer: AttentionLayer, mask: readonly number[]): number | null {
  if (layer.queryRule === "first") return 0;
  if (layer.queryRule === "index") return layer.queryIndex;
  if (layer.queryRule === "last_token" || layer.queryRule === "last") {
    for (let i = mask.length - 1; i >= 0; i--) if (mask[i]) return i;
    return mask.length - 1;
  }
  return null;
}

/** Whether a click on token `pos` of sequence `row` can show that query (its row is stored). */
export function canPick(layer: AttentionLayer | null, row: number, pos: number): boolean {
  return !!layer?.rows && row < layer.rows.numSamples && queryRow(layer.rows.queryBlocks, pos) !== null;
}

/** The query whose attention sequence `row` shows (clicked, else the default). */
export function queryOf(layer: AttentionLayer, data: TokensResponse, row: number): number | null {
  const q = attnQuery.value;
  if (q && q.row === row && canPick(layer, row, q.pos)) return q.pos;
  return defaultQuery(layer, data.mask[row] ?? []);
}

/** The attention overlay for the mode selector (none when the probe has no attention recorded). */
export function attentionSource(data: TokensResponse): OverlaySource[] {
  const layer = shownAttnLayer.value;
  if (!layer) return [];
  const probs = decoded.value;
  const head = Math.min(attnHead.value, layer.heads - 1);
  const values = data.tokens.map((tokens, row) => {
    if (!probs) return tokens.map(() => Number.NaN);
    const q = attnQuery.value;
    const picked = q && q.row === row && canPick(layer, row, q.pos) && probs.rows && layer.rows;
    const v = picked && layer.rows && probs.rows
      ? vectorAt(probs.rows, [row, head, queryRow(layer.rows.queryBlocks, q.pos) ?? 0])
      : vectorAt(probs.maps, [row, head]);
    return tokens.map((_, i) => (i < v.length ? v[i] : Number.NaN));
  });
  return [{ id: ATTENTION_OVERLAY, label: "Attention", signed: false, values }];
}

export function startTokenAttentionLoaders(): void {
  resource(
    tokenAttnLayers,
    () => {
      const run = selectedRun.value;
      const info = probeInfo.value;
      return activeView.value === TOKENS_VIEW && run && info ? ([run, info.probe] as [string, string]) : null;
    },
    ([run, probe], sig) => getJson<AttentionLayersResponse>("attention_layers", { run, probe }, sig),
  );
  resource(
    tokenAttnMaps,
    () => {
      const run = selectedRun.value;
      const info = probeInfo.value;
      const layer = shownAttnLayer.value;
      const step = attnStep.value;
      if (activeView.value !== TOKENS_VIEW || tokenOverlay.value !== ATTENTION_OVERLAY) return null;
      if (!run || !info || !layer || step === null) return null;
      return [run, info.probe, layer.layer, step] as [string, string, string, number];
    },
    ([run, probe, layer, step], sig) =>
      getJson<AttentionMapsResponse>("attention", { run, probe, layer, step: String(step), encoding: "u8" }, sig),
    true,
  );
}
