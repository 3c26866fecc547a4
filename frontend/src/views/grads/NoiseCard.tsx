// The gradient noise scale over steps (distributed runs only): the whole model's, and the selected
// layer's, each the ratio of moving averages (noise.ts); the per-step estimates as faint points.
import { useMemo } from "preact/hooks";
import type uPlot from "uplot";
import { darkMode, selectedLayer } from "../../core/state";
import { stepAxis, stepSeries } from "../../lib/chart_axes";
import { formatValue } from "../../lib/format";
import { UPlotChart } from "../../widgets/UPlotChart";
import { colors, logAxis, logRange } from "./chart_style";
import { MODEL_ROW, smoothedNoiseScale } from "./noise";
import { gradNoiseData } from "./state";

function positive(row: readonly (number | null)[] | undefined, n: number): (number | null)[] {
  return row ? row.map((v) => (typeof v === "number" && v > 0 ? v : null)) : new Array(n).fill(null);
}

export function NoiseCard() {
  const data = gradNoiseData.value;
  const layer = selectedLayer.value;
  const dark = darkMode.value;
  const chart = useMemo(() => {
    if (!data || !data.steps.length) return null;
    const n = data.steps.length;
    const row = (name: string) => data.layers.findIndex((l) => l.name === name);
    const smoothed = (i: number) => (i < 0 ? new Array(n).fill(null) : smoothedNoiseScale(data.values.traceSigma[i], data.values.gradSq[i]));
    const model = row(MODEL_ROW);
    const picked = layer !== null ? row(layer) : -1;
    const c = colors(dark);
    const line = (label: string, stroke: string, width = 2): uPlot.Series => ({
      label,
      stroke,
      width,
      points: { show: n < 2 },
      value: (_u, v) => formatValue(v),
    });
    const series: uPlot.Series[] = [line("model (smoothed)", dark ? c.meanDark : c.mean)];
    const columns: (number | null)[][] = [smoothed(model)];
    series.push({ label: "model (per step)", stroke: c.ratio, width: 0, points: { show: true, size: 4 }, value: (_u, v) => formatValue(v) });
    columns.push(positive(data.values.noiseScale?.[model], n));
    if (picked >= 0) {
      series.push(line(`${layer} (smoothed)`, c.act));
      columns.push(smoothed(picked));
    }
    const options: Omit<uPlot.Options, "width" | "height"> = {
      scales: { x: { time: false }, y: { distr: 3, log: 10, range: (_u, min, max) => logRange(min, max) } },
      axes: [stepAxis(dark), logAxis(dark)],
      cursor: { drag: { x: true, y: false, setScale: true }, points: { size: 6 } },
      legend: { live: true },
      series: [stepSeries(), ...series],
    };
    const batch = data.values.batchBig?.[model]?.find((v) => typeof v === "number") ?? null;
    return { data: [data.steps, ...columns] as uPlot.AlignedData, options, batch };
  }, [data, layer, dark]);
  if (!chart) return null;
  return (
    <section class="ins-card" data-testid="grad-noise">
      <div class="ins-card-head">
        <h2 class="ins-card-title">Gradient noise scale</h2>
        {chart.batch !== null ? <span class="ins-card-sub">batch of all ranks: {formatValue(chart.batch)}</span> : null}
      </div>
      <p class="ins-muted" data-testid="grad-noise-help">
        B_simple = tr(Σ)/|G|² from each rank's own gradient and their average (McCandlish et al. 2018): about the batch
        size beyond which a larger batch stops paying off; ratio of moving averages.
      </p>
      <div class="ins-chart" key={`noise-${dark}-${layer}`} data-chart="noise">
        <UPlotChart options={chart.options} data={chart.data} height={200} />
      </div>
    </section>
  );
}
