// The layer panel: everything Insight recorded about one layer, one section after another. A new
// section is one entry in LAYER_SECTIONS (a component taking {run, layer}).
import type { ComponentType } from "preact";
import { useMemo } from "preact/hooks";
import uPlot from "uplot";
import { CAM_VIEW } from "../cam_data";
import { axisStyle, stepAxis } from "../chart_axes";
import { camKind, camLayer } from "../cam_state";
import { formatValue } from "../format";
import { binRange, cadence } from "../model_math";
import { camLayers, histograms, histStep, unitData } from "../model_state";
import { activeView, colormap, darkMode, selectedRun } from "../state";
import { stepIndexAtOrBefore } from "../grad_math";
import { HistogramHeatmap } from "../widgets/HistogramHeatmap";
import { UPlotChart } from "../widgets/UPlotChart";
import { ErrorMessage } from "./common";
import { StepSlider } from "./fields";
import { FeatureMapsPanel } from "./FeatureMapsPanel";
import { LayerChartsView } from "./LayerCharts";

export interface LayerSectionProps {
  run: string;
  layer: string;
}

/** Activation statistics over steps (the charts of the statistics view). */
function StatsSection() {
  return <LayerChartsView />;
}

/** The shown step's histogram as bars. */
function HistogramBars(props: { x: number[]; counts: number[]; dark: boolean }) {
  const options = useMemo<Omit<uPlot.Options, "width" | "height">>(
    () => ({
      scales: { x: { time: false } },
      axes: [axisStyle(props.dark), { ...axisStyle(props.dark), size: 56, values: (_u, s) => s.map((v) => formatValue(v)) }],
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      series: [{}, { label: "count", stroke: "#e8710a", fill: "rgba(232,113,10,0.35)", width: 1, paths: uPlot.paths.bars!({ size: [1, 100], align: 1 }), points: { show: false } }],
    }),
    [props.dark],
  );
  return <UPlotChart key={props.dark ? "dark" : "light"} options={options} data={[props.x, props.counts]} height={160} />;
}

/** The layer's activation histograms: bins × steps, and the chosen step in detail. */
function HistogramSection(props: LayerSectionProps) {
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
            <div class="ins-grad-stepbar">
              <button type="button" class="ins-btn" disabled={index <= 0} onClick={() => go(index - 1)}>
                ‹
              </button>
              <StepSlider testid="hist-step-slider" steps={d.steps} index={index} ariaLabel="Histogram step" onIndex={go} />
              <button type="button" class="ins-btn" disabled={index >= d.steps.length - 1} onClick={() => go(index + 1)}>
                ›
              </button>
              <span class="ins-cam-step" data-testid="hist-step-label" data-step={d.steps[index]}>
                step <b>{d.steps[index]}</b>
              </span>
              <span
                class="ins-muted"
                data-testid="hist-step-summary"
                data-total={d.counts[index].reduce((a, b) => a + b, 0)}
                data-counts={d.counts[index].join(",")}
              >
                {`in range ${d.counts[index].reduce((a, b) => a + b, 0)} · below ${formatValue(d.low[index])}: ${d.underflow[index]} · above ${formatValue(d.high[index])}: ${d.overflow[index]}`}
              </span>
            </div>
            <HistogramBars x={x} counts={d.counts[index]} dark={dark} />
          </div>
        </>
      ) : null}
    </section>
  );
}

/** Dead and saturated fractions of the layer over steps (when defined for its module type). */
function UnitsSection(props: LayerSectionProps) {
  const data = unitData.value;
  const dark = darkMode.value;
  const i = data ? data.layers.findIndex((l) => l.name === props.layer) : -1;
  const chart = useMemo(() => {
    if (!data || i < 0) return null;
    const dead = data.dead[i];
    const saturated = data.saturated[i];
    const hasDead = dead.some((v) => v !== null);
    const hasSat = saturated.some((v) => v !== null);
    if (!hasDead && !hasSat) return null;
    const series: uPlot.Series[] = [{}];
    const columns: (number | null)[][] = [];
    if (hasDead) {
      series.push({ label: "dead", stroke: "#9334e6", width: 2, points: { show: false } });
      columns.push(dead);
    }
    if (hasSat) {
      series.push({ label: "saturated", stroke: "#e8710a", width: 2, points: { show: false } });
      columns.push(saturated);
    }
    const options: Omit<uPlot.Options, "width" | "height"> = {
      scales: { x: { time: false }, y: { range: [0, 1] } },
      axes: [stepAxis(dark), { ...axisStyle(dark), size: 44 }],
      series,
    };
    return { options, data: [data.steps, ...columns] as uPlot.AlignedData };
  }, [data, i, dark]);
  if (!data || i < 0) return null;
  return (
    <section class="ins-card" data-testid="layer-units">
      <div class="ins-card-head">
        <h2 class="ins-card-title">Dead and saturated channels</h2>
        <span class="ins-card-sub">fraction of the layer's {data.channels[i] ?? "?"} channels, on the recorded training batch</span>
      </div>
      {chart ? (
        <UPlotChart key={dark ? "dark" : "light"} options={chart.options} data={chart.data} height={150} />
      ) : (
        <div class="ins-muted">Not defined for a {data.layers[i].moduleType}: dead units are measured on rectifiers (ReLU, GELU, …), saturation on bounded modules (Sigmoid, Tanh, …).</div>
      )}
    </section>
  );
}

/** A link to the layer's CAMs, when CAMs were recorded for it. */
function CamLinkSection(props: LayerSectionProps) {
  if (!camLayers.value.has(props.layer)) return null;
  return (
    <section class="ins-card" data-testid="layer-cam-link">
      <button
        type="button"
        class="ins-link"
        onClick={() => {
          camKind.value = "cam";
          camLayer.value = props.layer;
          activeView.value = CAM_VIEW;
        }}
      >
        Open the CAMs recorded for this layer
      </button>
    </section>
  );
}

/** The layer's feature maps of the probe and its filters, with their own step slider. */
function FeatureMapsSection(props: LayerSectionProps) {
  return (
    <section class="ins-card" data-testid="layer-fmaps">
      <h2 class="ins-card-title">Feature maps</h2>
      <FeatureMapsPanel run={props.run} layer={props.layer} />
    </section>
  );
}

/** The sections of the layer panel, in order. */
export const LAYER_SECTIONS: ComponentType<LayerSectionProps>[] = [
  StatsSection,
  HistogramSection,
  UnitsSection,
  FeatureMapsSection,
  CamLinkSection,
];

export function LayerPanel(props: LayerSectionProps) {
  return (
    <div class="ins-layer-panel" data-testid="layer-panel" data-layer={props.layer} data-run={selectedRun.value ?? ""}>
      {LAYER_SECTIONS.map((Section, k) => (
        <Section key={k} run={props.run} layer={props.layer} />
      ))}
    </div>
  );
}
