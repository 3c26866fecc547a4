// Pure gradient-flow maths (no DOM): per-step medians, alerts, the chart's columns, log values.
import { aggregateRow, groupItems, type Entry, type ItemLine } from "../../lib/layer_groups";
import type { GradientsResponse } from "./api";

export type AlertKind = "nan" | "inf" | "exploding" | "vanishing";

export const ALERT_ORDER: AlertKind[] = ["nan", "inf", "exploding", "vanishing"];

export interface GradAlert {
  kind: AlertKind;
  layer: string;
  /** Index of the layer in the response (model order). */
  row: number;
  /** The first step the condition held, the last, and at how many recorded steps. */
  firstStep: number;
  lastStep: number;
  count: number;
  /** At the first step: the layer's value and the model's median (vanishing/exploding), or the count. */
  value: number | null;
  median: number | null;
}

export interface AlertOptions {
  /** Which norm to compare: the parameters' gradient or the gradient into the layer's output. */
  measure: "gradNorm" | "actGradNorm";
  /** Vanishing below vanish × median, exploding above explode × median (median over layers, per step). */
  vanish: number;
  explode: number;
}

function finite(v: number | null | undefined): v is number {
  return typeof v === "number" && Number.isFinite(v);
}

export function median(values: number[]): number | null {
  if (!values.length) return null;
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Median over the layers with a finite value, per step (null where no layer has one). */
export function stepMedians(rows: (number | null)[][], cols: number): (number | null)[] {
  const out: (number | null)[] = [];
  for (let j = 0; j < cols; j++) {
    const column: number[] = [];
    for (const row of rows) {
      const v = row[j];
      if (finite(v)) column.push(v);
    }
    out.push(median(column));
  }
  return out;
}

/**
 * Every (kind, layer) condition found over the recorded steps, with the first step it appeared.
 * NaN/Inf: any NaN (Inf) in the layer's parameter or output gradient. Vanishing / exploding: the
 * measure below `vanish` × or above `explode` × the median of all layers at that step (steps whose
 * median is 0 or unknown are skipped). Sorted NaN, Inf, exploding, vanishing; then by first step and
 * model order.
 */
export function findAlerts(data: GradientsResponse, options: AlertOptions): GradAlert[] {
  const cols = data.steps.length;
  const get = (field: string) => data.values[field] ?? [];
  const measure = get(options.measure);
  const medians = stepMedians(measure, cols);
  const found = new Map<string, GradAlert>();
  const note = (kind: AlertKind, row: number, j: number, value: number | null, med: number | null) => {
    const key = kind + "\u0000" + row;
    const step = data.steps[j];
    const hit = found.get(key);
    if (hit) {
      hit.lastStep = step;
      hit.count++;
    } else {
      found.set(key, { kind, layer: data.layers[row].name, row, firstStep: step, lastStep: step, count: 1, value, median: med });
    }
  };
  const counts = (a: string, b: string) => [get(a), get(b)];
  const [nanP, nanA] = counts("gradNanCount", "actGradNanCount");
  const [infP, infA] = counts("gradInfCount", "actGradInfCount");
  for (let i = 0; i < data.layers.length; i++) {
    for (let j = 0; j < cols; j++) {
      const nans = (nanP[i]?.[j] ?? 0) + (nanA[i]?.[j] ?? 0);
      const infs = (infP[i]?.[j] ?? 0) + (infA[i]?.[j] ?? 0);
      if (nans > 0) note("nan", i, j, nans, null);
      if (infs > 0) note("inf", i, j, infs, null);
      const v = measure[i]?.[j];
      const med = medians[j];
      if (!finite(v) || !finite(med) || med <= 0) continue;
      if (v > options.explode * med) note("exploding", i, j, v, med);
      else if (v < options.vanish * med) note("vanishing", i, j, v, med);
    }
  }
  return [...found.values()].sort(
    (a, b) => ALERT_ORDER.indexOf(a.kind) - ALERT_ORDER.indexOf(b.kind) || a.firstStep - b.firstStep || a.row - b.row,
  );
}

/** Rows of `field` that have at least one finite value (e.g. only layers with parameters). */
export function rowsWithData(data: GradientsResponse, field: string): number[] {
  const rows = data.values[field] ?? [];
  const out: number[] = [];
  for (let i = 0; i < data.layers.length; i++) if ((rows[i] ?? []).some(finite)) out.push(i);
  return out;
}

export interface FlowColumns {
  rows: number[];
  /** Bar labels: layer names, or folded groups' labels. */
  layers: string[];
  /** Per bar: the layer's name, or the folded group's key (groups[k] true). */
  keys?: string[];
  groups?: boolean[];
  mean: (number | null)[];
  max: (number | null)[];
}

/**
 * The gradient-flow chart at step index `j`: mean and max |g| of each layer with parameters, input
 * to output. Values that a log scale cannot show (0, negative, missing) are null.
 */
export function flowColumns(data: GradientsResponse, j: number): FlowColumns {
  const rows = rowsWithData(data, "gradMeanAbs");
  const pick = (field: string) =>
    rows.map((i) => {
      const v = data.values[field]?.[i]?.[j];
      return finite(v) && v > 0 ? v : null;
    });
  return { rows, layers: rows.map((i) => data.layers[i].name), mean: pick("gradMeanAbs"), max: pick("gradMaxAbs") };
}

/** log10 of every positive finite value (null otherwise): colours a heatmap of norms spanning decades. */
export function log10Rows(rows: (number | null)[][]): (number | null)[][] {
  return rows.map((row) => row.map((v) => (finite(v) && v > 0 ? Math.log10(v) : null)));
}

/**
 * The gradient-flow chart at step index `j` with rows grouped (lib/layer_groups, no header rows): a
 * folded group is one bar, its mean |g| the mean of its layers' and its max |g| the largest.
 */
export function groupedFlowColumns(data: GradientsResponse, j: number, entries: readonly Entry[]): FlowColumns {
  const at = (field: string, e: Entry): number | null => {
    const rows = data.values[field] ?? [];
    const members = e.kind === "layer" ? [e.layer] : e.members;
    const column = members.map((i) => [rows[i]?.[j] ?? null]);
    const v = aggregateRow(column, column.map((_, k) => k), 1, field === "gradMaxAbs" ? "max" : "mean")[0];
    return finite(v) && v > 0 ? v : null;
  };
  return {
    rows: entries.map((e) => (e.kind === "layer" ? e.layer : e.members[0])),
    layers: entries.map((e) => (e.kind === "layer" ? data.layers[e.layer].name : e.node.label)),
    keys: entries.map((e) => (e.kind === "layer" ? data.layers[e.layer].name : e.node.key)),
    groups: entries.map((e) => e.kind === "group"),
    mean: entries.map((e) => at("gradMeanAbs", e)),
    max: entries.map((e) => at("gradMaxAbs", e)),
  };
}

/** Alerts of the layers shown under `entries` (header rows included), those inside one folded group together. */
export function groupAlerts(list: readonly GradAlert[], entries: readonly Entry[]): ItemLine<GradAlert>[] {
  return groupItems(list, (a) => a.row, (a) => a.kind, entries);
}
