// Axis settings shared by the uPlot charts: the tab's axis style (text, grid and tick colours per
// theme) and the x axis of charts over training steps, whose ticks are whole steps only.
import type uPlot from "uplot";

export const AXIS_FONT = "11px Roboto, 'Helvetica Neue', Arial, sans-serif";

/** Axis text and grid colours of the light and dark themes (TensorBoard's). */
export function axisColors(dark: boolean): { text: string; grid: string } {
  return {
    text: dark ? "rgba(255,255,255,0.7)" : "#616161",
    grid: dark ? "rgba(255,255,255,0.08)" : "rgba(0,0,0,0.07)",
  };
}

/** An axis in the tab's style: label colour, font, light grid and short ticks. */
export function axisStyle(dark: boolean): uPlot.Axis {
  const c = axisColors(dark);
  return { stroke: c.text, font: AXIS_FONT, grid: { stroke: c.grid, width: 1 }, ticks: { stroke: c.grid, width: 1, size: 4 } };
}

/** Tick spacings for an axis of training steps: 1, 2, 5, 10, 20, 25, 50, … (uPlot's 1-2-2.5-5 series
 * without 2.5), whole numbers only. uPlot takes the smallest that leaves room between labels, so a
 * run of a few steps gets ticks 0, 1, 2, 3 instead of 0, 0.5, 1, …, 2.5. */
export const STEP_INCRS: readonly number[] = Array.from({ length: 16 }, (_, e) => [1, 2, 2.5, 5].map((m) => m * 10 ** e))
  .flat()
  .filter((v) => Number.isInteger(v));

/** The x axis of a chart over training steps. */
export function stepAxis(dark: boolean): uPlot.Axis {
  return { ...axisStyle(dark), size: 34, incrs: [...STEP_INCRS] };
}

/** The x series of a chart over training steps: the legend shows the step under the cursor. */
export function stepSeries(): uPlot.Series {
  return { label: "step", value: (_u, v) => (v === null || v === undefined ? "–" : String(v)) };
}
