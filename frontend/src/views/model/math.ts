// Pure helpers of the Model view: the folding tree of the model table, output descriptions,
// dead/saturated unit alerts and the histogram's colour cells. No DOM here (unit-tested in node).
import type { LayerInfo } from "../../core/api";
import type { HistogramsResponse, ModelRow, ModelTotals, OutputDescription, UnitsResponse } from "./api";

/** Whether row i has children (the rows after it whose names start with its name and a dot). */
export function hasChildren(rows: readonly ModelRow[], i: number): boolean {
  const next = rows[i + 1];
  return next !== undefined && next.depth > rows[i].depth;
}

/** The index of each row's parent (-1 for the root), from the depth-first order of named_modules(). */
export function parentIndices(rows: readonly ModelRow[]): number[] {
  const stack: number[] = [];
  return rows.map((row, i) => {
    while (stack.length && rows[stack[stack.length - 1]].depth >= row.depth) stack.pop();
    const parent = stack.length ? stack[stack.length - 1] : -1;
    stack.push(i);
    return parent;
  });
}

export interface TreeOptions {
  /** The deepest depth shown (0 = the model row only), unless a row's override says otherwise. */
  depth: number;
  /** Per-row overrides of the depth rule: true = unfolded, false = folded. */
  open: ReadonlyMap<string, boolean>;
  /** Case-insensitive text matched against name and type; matching rows show with their ancestors. */
  filter: string;
}

/** Whether a row's children show: its override, else the depth rule. */
export function isOpen(row: ModelRow, options: TreeOptions): boolean {
  return options.open.get(row.name) ?? row.depth < options.depth;
}

/** Indices of the rows to show, in order. */
export function visibleRows(rows: readonly ModelRow[], options: TreeOptions): number[] {
  const parents = parentIndices(rows);
  const needle = options.filter.trim().toLowerCase();
  if (needle) {
    const keep = new Set<number>();
    rows.forEach((row, i) => {
      const label = (row.name || "(model)") + " " + row.type;
      if (!label.toLowerCase().includes(needle)) return;
      for (let k = i; k >= 0 && !keep.has(k); k = parents[k]) keep.add(k);
    });
    return rows.map((_, i) => i).filter((i) => keep.has(i));
  }
  const shown: boolean[] = [];
  const out: number[] = [];
  rows.forEach((_, i) => {
    const p = parents[i];
    const visible = p < 0 || (shown[p] && isOpen(rows[p], options));
    shown[i] = visible;
    if (visible) out.push(i);
  });
  return out;
}

export function maxDepth(rows: readonly ModelRow[]): number {
  return rows.reduce((m, r) => Math.max(m, r.depth), 0);
}

/** "[8, 4, 8, 8]", "([8, 4], [8])", "{logits: [8, 3]}", a type name, or "–" when the module did not run. */
export function formatOutput(out: OutputDescription): string {
  if (out === null || out === undefined) return "–";
  if (typeof out === "string") return out;
  if (Array.isArray(out)) {
    if (out.every((v) => typeof v === "number")) return "[" + out.join(", ") + "]";
    return "(" + out.map((v) => formatOutput(v as OutputDescription)).join(", ") + ")";
  }
  return "{" + Object.entries(out).map(([k, v]) => `${k}: ${formatOutput(v)}`).join(", ") + "}";
}

export function formatCount(n: number): string {
  return Number.isFinite(n) ? n.toLocaleString("en-US") : "–";
}

const isCount = (n: unknown): n is number => typeof n === "number" && Number.isFinite(n);

/** A row's mult-adds humanised ("1.23 M", "512", "–" for none); "" when the table predates them. */
export function formatMultAdds(n: number | undefined): string {
  if (!isCount(n)) return "";
  if (n === 0) return "–";
  for (const [unit, size] of [["T", 1e12], ["G", 1e9], ["M", 1e6], ["K", 1e3]] as const) {
    if (Math.abs(n) >= size) return (n / size).toFixed(2) + " " + unit;
  }
  return String(n);
}

/** A kernel shape as torchinfo writes it ("[3, 3]"); "" when the module has none or the table predates it. */
export function formatKernel(k: number[] | null | undefined): string {
  return Array.isArray(k) && k.length ? "[" + k.join(", ") + "]" : "";
}

/** torchinfo's totals block as label/value lines (sizes in MB = 10^6 bytes, mult-adds in M, G or T as
 * torchinfo picks them); [] for tables written before totals existed or with a damaged block. */
export function totalsLines(totals: ModelTotals | undefined | null): { label: string; value: string; rule?: boolean }[] {
  if (!totals || typeof totals !== "object") return [];
  const t = totals as unknown as Record<string, unknown>;
  const keys = ["totalParams", "trainableParams", "nonTrainableParams", "totalMultAdds", "inputSizeBytes", "forwardBackwardSizeBytes", "paramsSizeBytes", "estimatedTotalSizeBytes"];
  if (!keys.every((k) => isCount(t[k]))) return [];
  const macs = totals.totalMultAdds;
  const [unit, size] = macs >= 1e12 ? ["T", 1e12] : macs >= 1e9 ? ["G", 1e9] : ["M", 1e6];
  const mb = (bytes: number) => (bytes / 1e6).toFixed(2);
  return [
    { label: "Total params", value: formatCount(totals.totalParams) },
    { label: "Trainable params", value: formatCount(totals.trainableParams) },
    { label: "Non-trainable params", value: formatCount(totals.nonTrainableParams) },
    { label: `Total mult-adds (${unit})`, value: (macs / size).toFixed(2) },
    { label: "Input size (MB)", value: mb(totals.inputSizeBytes), rule: true },
    { label: "Forward/backward pass size (MB)", value: mb(totals.forwardBackwardSizeBytes) },
    { label: "Params size (MB)", value: mb(totals.paramsSizeBytes) },
    { label: "Estimated total size (MB)", value: mb(totals.estimatedTotalSizeBytes) },
  ];
}

/**
 * A flat table of the recorded layers, for runs without a model table (written before it existed, or
 * with watch(model_table=False)): parameter counts unknown (NaN), the first recorded shape as output.
 */
export function rowsFromLayers(layers: readonly LayerInfo[]): ModelRow[] {
  return [...layers]
    .sort((a, b) => a.order - b.order)
    .map((l) => ({
      name: l.name,
      type: l.moduleType,
      depth: 0,
      params: NaN,
      trainableParams: NaN,
      ownParams: NaN,
      watched: true,
      output: l.shape && l.shape.length ? l.shape : null,
      calls: 1,
    }));
}

export type UnitAlertKind = "dead" | "saturated";

export interface UnitAlert {
  kind: UnitAlertKind;
  layer: string;
  /** First recorded step with a fraction above the threshold. */
  firstStep: number;
  /** Fraction at the last recorded step (null if missing there). */
  last: number | null;
  max: number;
  /** The fraction over all recorded steps (null = missing), for a sparkline. */
  series: (number | null)[];
}

/** One alert per (layer, kind) whose fraction exceeds `threshold` at some step, in model order. */
export function findUnitAlerts(data: UnitsResponse, threshold = 0): UnitAlert[] {
  const out: UnitAlert[] = [];
  const kinds: [UnitAlertKind, (number | null)[][]][] = [
    ["dead", data.dead],
    ["saturated", data.saturated],
  ];
  data.layers.forEach((layer, i) => {
    for (const [kind, table] of kinds) {
      const row = table[i] ?? [];
      let first = -1;
      let max = 0;
      row.forEach((v, j) => {
        if (v !== null && v > threshold) {
          if (first < 0) first = j;
          max = Math.max(max, v);
        }
      });
      if (first >= 0) {
        // The thinned columns show each column's last step: the server's exact first step when given.
        const since = threshold === 0 ? (kind === "dead" ? data.deadSince : data.saturatedSince)?.[i] : undefined;
        const firstStep = typeof since === "number" ? since : data.steps[first];
        out.push({ kind, layer: layer.name, firstStep, last: row[row.length - 1] ?? null, max, series: row });
      }
    }
  });
  return out;
}

/**
 * Colour indices (0..255) of a bins × steps histogram image, row 0 = the highest bin: each step's
 * counts scaled by that step's largest count (so every step's shape shows), on a log scale
 * (log(1 + count) / log(1 + peak)) so thin tails stay visible next to a ReLU's spike at zero.
 * 255 marks the fullest bin; -1 a step without data.
 */
export function histogramCells(data: HistogramsResponse): Int16Array {
  const cols = data.steps.length;
  const bins = data.bins;
  const out = new Int16Array(cols * bins).fill(-1);
  for (let j = 0; j < cols; j++) {
    const counts = data.counts[j] ?? [];
    const peak = counts.reduce((m, c) => Math.max(m, c), 0);
    for (let b = 0; b < bins; b++) {
      const c = counts[b] ?? 0;
      out[(bins - 1 - b) * cols + j] = peak > 0 ? Math.round((Math.log1p(c) / Math.log1p(peak)) * 255) : 0;
    }
  }
  return out;
}

/** The [lower, upper) value range of bin b at step index j. */
export function binRange(data: HistogramsResponse, j: number, b: number): [number, number] | null {
  const lo = data.low[j];
  const hi = data.high[j];
  if (lo === null || hi === null || data.bins <= 0) return null;
  const w = (hi - lo) / data.bins;
  return [lo + b * w, lo + (b + 1) * w];
}

/** " · every N steps" from the smallest gap between recorded steps (e.g. watch(histogram_every=N)); "" for
 * fewer than two steps. */
export function cadence(steps: readonly number[]): string {
  let gap = Infinity;
  for (let i = 1; i < steps.length; i++) gap = Math.min(gap, steps[i] - steps[i - 1]);
  return Number.isFinite(gap) && gap > 0 ? ` · every ${gap} steps` : "";
}

/** Left edges of `bins` equal-width bins over [low, high] (a parameter histogram's own per-step edges). */
export function binLeftEdges(low: number | null, high: number | null, bins: number): number[] {
  if (low === null || high === null || !(high > low)) return Array.from({ length: bins }, (_, b) => b);
  const width = (high - low) / bins;
  return Array.from({ length: bins }, (_, b) => low + b * width);
}
