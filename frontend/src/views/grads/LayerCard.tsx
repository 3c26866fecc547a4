// The selected layer's gradients over steps: its parameter and output gradient norms, and its update ratio.
import { useMemo } from "preact/hooks";
import uPlot from "uplot";
import { darkMode, selectedLayer } from "../../core/state";
import { stepAxis, stepSeries } from "../../lib/chart_axes";
import { formatValue } from "../../lib/format";
import { UPlotChart } from "../../widgets/UPlotChart";
import type { GradientsResponse } from "./api";
import { colors, logAxis, logRange } from "./chart_style";
import { gradLayerData, shownGradStep } from "./state";

function lineOptions(dark: boolean, series: uPlot.Series[], step: number | null): Omit<uPlot.Options, "width" | "height"> {
  const c = colors(dark);
  return {
    scales: { x: { time: false }, y: { distr: 3, log: 10, range: (_u, min, max) => logRange(min, max) } },
    axes: [stepAxis(dark), logAxis(dark)],
    cursor: { drag: { x: true, y: false, setScale: true }, points: { size: 6 } },
    legend: { live: true },
    series: [stepSeries(), ...series],
    hooks: {
      draw: [
        (u) => {
          if (step === null) return;
          const x = u.valToPos(step, "x", true);
          if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) return;
          u.ctx.save();
          u.ctx.strokeStyle = c.text;
          u.ctx.setLineDash([3, 3]);
          u.ctx.beginPath();
          u.ctx.moveTo(x, u.bbox.top);
          u.ctx.lineTo(x, u.bbox.top + u.bbox.height);
          u.ctx.stroke();
          u.ctx.restore();
        },
      ],
    },
  };
}

function positive(row: (number | null)[] | undefined, n: number): (number | null)[] {
  return row ? row.map((v) => (typeof v === "number" && v > 0 ? v : null)) : new Array(n).fill(null);
}

export function LayerCard(props: { data: GradientsResponse }) {
  const { data } = props;
  const layer = selectedLayer.value;
  const dark = darkMode.value;
  const step = shownGradStep.value;
  const overviewRow = layer === null ? -1 : data.layers.findIndex((l) => l.name === layer);
  // The layer's own series (every recorded step) once loaded; until then the overview's columns.
  const full = gradLayerData.value;
  const series = full ?? data;
  const row = full ? 0 : overviewRow;
  const charts = useMemo(() => {
    if (row < 0) return [];
    const n = series.steps.length;
    const get = (f: string) => positive(series.values[f]?.[row], n);
    const c = colors(dark);
    const line = (label: string, stroke: string): uPlot.Series => ({
      label,
      stroke,
      width: 2,
      points: { show: n < 2 },
      value: (_u, v) => formatValue(v),
    });
    return [
      {
        id: "norms",
        title: "Gradient norms",
        data: [series.steps, get("gradNorm"), get("actGradNorm")] as uPlot.AlignedData,
        options: lineOptions(dark, [line("‖∇w‖ parameters", dark ? c.meanDark : c.mean), line("‖∇out‖ output", c.act)], step),
      },
      {
        id: "ratio",
        title: "Update ratio ‖Δw‖ / ‖w‖",
        data: [series.steps, get("updateRatio")] as uPlot.AlignedData,
        options: lineOptions(dark, [line("update ratio", c.ratio)], step),
      },
    ];
  }, [series, row, dark, step]);
  if (layer === null) {
    return (
      <section class="ins-card" data-testid="grad-layer-empty">
        <div class="ins-muted">Click a bar, a heatmap row or an alert to see that layer's gradients over steps.</div>
      </section>
    );
  }
  const info = overviewRow >= 0 ? data.layers[overviewRow] : null;
  return (
    <section class="ins-card" data-testid="grad-layer-charts" data-layer={layer}>
      <div class="ins-card-head">
        <h2 class="ins-card-title">{layer}</h2>
        {info ? <span class="ins-card-sub">{info.moduleType}</span> : null}
      </div>
      {row < 0 ? (
        <div class="ins-muted">No gradient records for this layer.</div>
      ) : (
        <div class="ins-charts">
          {charts.map((ch) => (
            <div class="ins-chart" key={`${ch.id}-${layer}-${dark}-${step}`} data-chart={ch.id}>
              <div class="ins-chart-title">{ch.title}</div>
              <UPlotChart options={ch.options} data={ch.data} height={200} />
            </div>
          ))}
        </div>
      )}
    </section>
  );
}
