// The layer panel's histogram section: the layer's activation histograms as bins × steps, and the
// chosen step's histogram as bars under a step player.
import { useMemo } from "preact/hooks";
import uPlot from "uplot";
import { colormap, darkMode } from "../../core/state";
import { axisStyle } from "../../lib/chart_axes";
import { formatValue } from "../../lib/format";
import { stepIndexAtOrBefore } from "../../lib/steps";
import { ErrorMessage } from "../../widgets/ErrorMessage";
import { StepPlayer } from "../../widgets/StepPlayer";
import { UPlotChart } from "../../widgets/UPlotChart";
import { HistogramHeatmap } from "./HistogramHeatmap";
import type { LayerSectionProps } from "./LayerPanel";
import { binRange, cadence } from "./math";
import { histograms, histStep } from "./state";

/** The shown step's histogram as bars. */
export function HistogramBars(props: { x: number[]; counts: number[]; dark: boolean; color?: string; height?: number }) {
  const color = props.color ?? "#e8710a";
  const options = useMemo<Omit<uPlot.Options, "width" | "height">>(
    () => ({
      scales: { x: { time: false } },
      axes: [axisStyle(props.dark), { ...axisStyle(props.dark), size: 56, values: (_u, s) => s.map((v) => formatValue(v)) }],
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      series: [{}, { label: "count", stroke: color, fill: `${color}59`, width: 1, paths: uPlot.paths.bars!({ size: [1, 100], align: 1 }), points: { show: false } }],
    }),
    [props.dark, color],
  );
  return <UPlotChart key={props.dark ? "dark" : "light"} options={options} data={[props.x, props.counts]} height={props.height ?? 160} />;
}

/** The layer's activation histograms: bins × steps, and the chosen step in detail. */
export function HistogramSection(props: LayerSectionProps) {
  const state = histograms.value;
  const d = state.data && state.data.run === props.run && state.data.layer === props.layer ? state.data : null;
  const dark = darkMode.value;
  const index = d ? stepIndexAtOrBefore(d.steps, histStep.value) : -1;
  const go = (i: number) => {
    if (d && i >= 0 && i < d.steps.length) histStep.value = d.steps[i];
  };
  const missing = d !== null && d.bins === 0;
  const x = useMemo(() => (d && index >= 0 ? d.counts[index].map((_, b) => binRange(d, index, b)?.[0] ?? b) : []), [d, index]);
  return (
    <section class="ins-card" data-testid="layer-histogram" data-layer={d?.layer ?? ""}>
      <div class="ins-card-head">
        <h2 class="ins-card-title">Activation histogram</h2>
        {d ? <span class="ins-card-sub">{`${d.bins} bins${cadence(d.steps)} · range fixed at the first histogram · colour: log count, each step scaled to its fullest bin`}</span> : null}
        <span class="ins-spacer" />
        {state.loading ? <span class="ins-loading">Loading…</span> : null}
      </div>
      {missing ? (
        <div class="ins-muted">No histograms recorded for this layer (watch(..., histograms=True) records them).</div>
      ) : state.error ? (
        <ErrorMessage title="Could not load the histograms" message={state.error} />
      ) : null}
      {d && !missing && d.steps.length === 0 ? <div class="ins-muted">No histogram recorded yet.</div> : null}
      {d && index >= 0 ? (
        <>
          <HistogramHeatmap data={d} colormap={colormap.value} markColumn={index} onSelectColumn={go} />
          <div class="ins-hist-detail">
            <StepPlayer
              class="ins-grad-stepbar"
              steps={d.steps}
              index={index}
              onIndex={go}
              ids={{ slider: "hist-step-slider", label: "hist-step-label" }}
              ariaLabel="Histogram step"
              arrows
              count={false}
            >
              <span
                class="ins-muted"
                data-testid="hist-step-summary"
                data-total={d.counts[index].reduce((a, b) => a + b, 0)}
                data-counts={d.counts[index].join(",")}
              >
                {`in range ${d.counts[index].reduce((a, b) => a + b, 0)} · below ${formatValue(d.low[index])}: ${d.underflow[index]} · above ${formatValue(d.high[index])}: ${d.overflow[index]}`}
              </span>
            </StepPlayer>
            <HistogramBars x={x} counts={d.counts[index]} dark={dark} />
          </div>
        </>
      ) : null}
    </section>
  );
}
