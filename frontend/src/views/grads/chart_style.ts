// Chart styling of the gradient view: its colours and log-scaled axes (ticks at powers of ten).
import uPlot from "uplot";
import { axisColors, axisStyle } from "../../lib/chart_axes";
import { formatValue } from "../../lib/format";
import type { GradientsResponse } from "./api";

export function colors(dark: boolean) {
  return {
    ...axisColors(dark),
    max: dark ? "rgba(18,181,203,0.45)" : "rgba(18,181,203,0.35)",
    maxEdge: "#12b5cb",
    mean: "#425066",
    meanDark: "#8e98a3",
    act: "#e52592",
    ratio: "#e8710a",
    selected: dark ? "rgba(251,140,0,0.2)" : "rgba(245,124,0,0.14)",
  };
}

function isDecade(v: number): boolean {
  return v > 0 && Math.abs(Math.log10(v) - Math.round(Math.log10(v))) < 1e-6;
}

/** A log axis label: 0.01 … 100 as numbers, smaller and larger powers of ten as 1e-5, 1e4. */
function decadeLabel(v: number): string {
  const e = Math.round(Math.log10(v));
  return Math.abs(e) <= 2 ? formatValue(10 ** e) : `1e${e}`;
}

function isOneTwoFive(v: number): boolean {
  const m = Math.round(v / 10 ** Math.floor(Math.log10(v) + 1e-9));
  return m === 1 || m === 2 || m === 5;
}

/** Log axes: ticks, grid and labels at the powers of ten when they span 3 or more, else at 1-2-5. */
const logFilter: uPlot.Axis.Filter = (_u, splits) => {
  const keep = splits.filter(isDecade).length >= 3 ? isDecade : isOneTwoFive;
  return splits.map((v) => (v > 0 && keep(v) ? v : null));
};

function logValues(u: uPlot, splits: number[], axisIdx: number): string[] {
  const kept = logFilter(u, splits, axisIdx, 0, 0);
  return splits.map((v, i) => (kept[i] === null ? "" : isDecade(v) ? decadeLabel(v) : formatValue(v)));
}

/** The smallest value a log axis shows: below about 1e-25 uPlot's log-axis splits (rounding to that many
 * decimals) never end ("Invalid array length", and nothing is drawn), and vanished gradients of deep
 * nets reach 1e-40. Smaller values sit below the axis. */
export const LOG_FLOOR = 1e-20;

/** A log scale's range: the decades enclosing [min, max], never below LOG_FLOOR. */
export function logRange(min: number | null | undefined, max: number | null | undefined): [number, number] {
  const lo = Math.max(LOG_FLOOR, typeof min === "number" && min > 0 ? min : LOG_FLOOR);
  const hi = Math.max(lo, typeof max === "number" && max > 0 ? max : 1);
  const a = 10 ** Math.floor(Math.log10(lo) + 1e-9);
  const b = 10 ** Math.ceil(Math.log10(hi) - 1e-9);
  return [a, b > a ? b : a * 10];
}

/** Powers of ten enclosing every positive mean/max over all steps: the y range stays put while scrubbing. */
export function decadeRange(data: GradientsResponse): [number, number] | null {
  let lo = Infinity;
  let hi = -Infinity;
  for (const field of ["gradMeanAbs", "gradMaxAbs"]) {
    for (const row of data.values[field] ?? []) {
      for (const v of row) {
        if (typeof v === "number" && v > 0 && Number.isFinite(v)) {
          if (v < lo) lo = v;
          if (v > hi) hi = v;
        }
      }
    }
  }
  if (!(lo <= hi)) return null;
  return logRange(lo, 10 ** Math.ceil(Math.log10(hi) + 1e-9));
}

/** A log-scaled value axis with ticks and labels from logFilter. */
export function logAxis(dark: boolean): uPlot.Axis {
  const style = axisStyle(dark);
  return { ...style, size: 56, grid: { ...style.grid, filter: logFilter }, ticks: { ...style.ticks, filter: logFilter }, filter: logFilter, values: logValues };
}
