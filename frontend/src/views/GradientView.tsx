// The gradient view: the gradient-flow chart at a chosen step, a layer × step heatmap of a gradient
// statistic, the alerts panel (vanishing / exploding / NaN / Inf) and the selected layer over steps.
import { useEffect, useMemo, useRef } from "preact/hooks";
import uPlot from "uplot";
import { axisColors, axisStyle, stepAxis, stepSeries } from "../chart_axes";
import type { GradientsResponse } from "../api";
import { formatValue } from "../format";
import { flowColumns, log10Rows, rowsWithData, type FlowColumns, type GradAlert } from "../grad_math";
import {
  alertMeasure,
  alerts,
  explodeExp,
  gradData,
  gradField,
  gradLayerData,
  gradients,
  gradStep,
  gradStepIndex,
  HEATMAP_FIELDS,
  shownGradStep,
  vanishExp,
} from "../grad_state";
import { colormap, darkMode, selectedLayer, selectedRun } from "../state";
import { ColorLegend, Heatmap } from "../widgets/Heatmap";
import { UPlotChart } from "../widgets/UPlotChart";
import { ErrorMessage } from "./common";
import { StepSlider } from "./fields";

function colors(dark: boolean) {
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

/** Powers of ten enclosing every positive mean/max over all steps: the y range stays put while scrubbing. */
function decadeRange(data: GradientsResponse): [number, number] | null {
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
  return [10 ** Math.floor(Math.log10(lo)), 10 ** Math.ceil(Math.log10(hi) + 1e-9)];
}

function FlowChart(props: {
  cols: FlowColumns;
  range: [number, number] | null;
  selected: string | null;
  dark: boolean;
  onPick: (layer: string) => void;
}) {
  const { cols, dark } = props;
  const ref = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const selectedIndex = useRef(-1);
  selectedIndex.current = props.selected === null ? -1 : cols.layers.indexOf(props.selected);
  const pick = useRef(props.onPick);
  pick.current = props.onPick;
  const range = useRef(props.range);
  range.current = props.range;
  const key = cols.layers.join("\u0000") + (dark ? "|dark" : "|light");
  const data = (c: FlowColumns): uPlot.AlignedData => [c.layers.map((_, i) => i), c.max, c.mean];

  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    const c = colors(dark);
    const names = cols.layers;
    const longest = names.reduce((m, n) => Math.max(m, n.length), 1);
    const labelSpace = Math.min(150, 14 + longest * 6.2);
    const options: uPlot.Options = {
      width: Math.max(240, el.clientWidth),
      height: 260 + labelSpace,
      scales: {
        x: { time: false, range: [-0.5, names.length - 0.5] },
        y: {
          distr: 3,
          log: 10,
          range: (_u, min, max) => range.current ?? ([min || 1e-12, max || 1] as uPlot.Range.MinMax),
        },
      },
      axes: [
        {
          ...axisStyle(dark),
          grid: { show: false },
          rotate: -60,
          size: labelSpace,
          splits: (u) => {
            const every = Math.max(1, Math.ceil((names.length * 13) / Math.max(1, u.bbox.width / devicePixelRatio)));
            return names.map((_, i) => i).filter((i) => i % every === 0);
          },
          values: (_u, splits) => splits.map((i) => names[i] ?? ""),
        },
        logAxis(dark),
      ],
      cursor: { drag: { x: false, y: false }, points: { show: false } },
      legend: { live: true },
      series: [
        { label: "layer", value: (_u, v) => (v === null || v === undefined ? "–" : names[v] ?? "–") },
        {
          label: "max |g|",
          fill: c.max,
          stroke: c.maxEdge,
          width: 1,
          paths: uPlot.paths.bars!({ size: [0.7, 48] }),
          points: { show: false },
          value: (_u, v) => formatValue(v),
        },
        {
          label: "mean |g|",
          fill: dark ? c.meanDark : c.mean,
          stroke: dark ? c.meanDark : c.mean,
          width: 1,
          paths: uPlot.paths.bars!({ size: [0.4, 28] }),
          points: { show: false },
          value: (_u, v) => formatValue(v),
        },
      ],
      hooks: {
        drawClear: [
          (u) => {
            const i = selectedIndex.current;
            if (i < 0) return;
            const x0 = u.valToPos(i - 0.5, "x", true);
            const x1 = u.valToPos(i + 0.5, "x", true);
            u.ctx.save();
            u.ctx.fillStyle = c.selected;
            u.ctx.fillRect(x0, u.bbox.top, x1 - x0, u.bbox.height);
            u.ctx.restore();
          },
        ],
      },
    };
    const u = new uPlot(options, data(cols), el);
    plot.current = u;
    const onClick = () => {
      const i = u.cursor.idx;
      if (i !== null && i !== undefined && names[i] !== undefined) pick.current(names[i]);
    };
    u.over.addEventListener("click", onClick);
    u.over.style.cursor = "pointer";
    let lastWidth = el.clientWidth;
    const ro = new ResizeObserver(() => {
      const w = Math.max(240, el.clientWidth);
      if (w !== lastWidth) {
        lastWidth = w;
        u.setSize({ width: w, height: options.height });
      }
    });
    ro.observe(el);
    return () => {
      ro.disconnect();
      u.over.removeEventListener("click", onClick);
      u.destroy();
      plot.current = null;
    };
    // The chart is rebuilt when its layers or the theme change (key); data updates use setData.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key]);

  useEffect(() => {
    plot.current?.setData(data(cols));
  }, [cols]);
  useEffect(() => {
    plot.current?.redraw(false);
  }, [props.selected]);

  return <div ref={ref} class="ins-gradflow-plot" />;
}

function StepBar(props: { steps: number[]; index: number }) {
  const { steps, index } = props;
  const go = (i: number) => {
    if (i >= 0 && i < steps.length) gradStep.value = steps[i];
  };
  return (
    <div class="ins-grad-stepbar">
      <button type="button" class="ins-btn" data-testid="grad-prev" disabled={index <= 0} onClick={() => go(index - 1)}>
        ‹
      </button>
      <StepSlider testid="grad-step-slider" steps={steps} index={index} ariaLabel="Step" onIndex={go} />
      <button
        type="button"
        class="ins-btn"
        data-testid="grad-next"
        disabled={index >= steps.length - 1}
        onClick={() => go(index + 1)}
      >
        ›
      </button>
      <span class="ins-cam-step" data-testid="grad-step-label">
        step <b>{steps[index]}</b>
      </span>
      <span class="ins-cam-count ins-muted">
        {index + 1} / {steps.length}
      </span>
    </div>
  );
}

function FlowCard(props: { data: GradientsResponse }) {
  const { data } = props;
  const index = gradStepIndex.value;
  const dark = darkMode.value;
  const cols = useMemo(() => flowColumns(data, Math.max(0, index)), [data, index]);
  const range = useMemo(() => decadeRange(data), [data]);
  const step = shownGradStep.value;
  return (
    <section class="ins-card" data-testid="gradflow-card">
      <div class="ins-card-head">
        <h2 class="ins-card-title">Gradient flow{step !== null ? ` at step ${step}` : ""}</h2>
        <span class="ins-card-sub">mean and max |g| of each layer's parameter gradients, input to output, log scale</span>
      </div>
      <StepBar steps={data.steps} index={index} />
      {cols.layers.length ? (
        <div data-testid="gradflow-chart" data-step={step ?? ""} data-layers={cols.layers.length}>
          <FlowChart
            cols={cols}
            range={range}
            selected={selectedLayer.value}
            dark={dark}
            onPick={(layer) => {
              selectedLayer.value = layer;
            }}
          />
        </div>
      ) : (
        <div class="ins-muted">No layer with parameter gradients was recorded.</div>
      )}
    </section>
  );
}

function GradHeatmapCard(props: { data: GradientsResponse }) {
  const { data } = props;
  const field = gradField.value;
  const def = HEATMAP_FIELDS.find((f) => f.id === field) ?? HEATMAP_FIELDS[0];
  const heat = useMemo(() => {
    const rows = rowsWithData(data, def.id);
    const values = log10Rows(rows.map((i) => data.values[def.id]?.[i] ?? []));
    return { run: data.run, stat: def.id, layers: rows.map((i) => data.layers[i].name), steps: data.steps, values };
  }, [data, def.id]);
  const range = useMemo(() => {
    let lo = Infinity;
    let hi = -Infinity;
    for (const row of heat.values) for (const v of row) if (v !== null) ((lo = Math.min(lo, v)), (hi = Math.max(hi, v)));
    return lo <= hi ? [lo, hi] : null;
  }, [heat]);
  return (
    <section class="ins-card" data-testid="grad-heatmap-card">
      <div class="ins-card-head">
        <h2 class="ins-card-title">{def.label} per layer and step</h2>
        <span class="ins-card-sub">log scale</span>
        <span class="ins-spacer" />
        {range ? (
          <ColorLegend colormap={colormap.value} low={formatValue(10 ** range[0])} high={formatValue(10 ** range[1])} />
        ) : null}
      </div>
      {heat.layers.length ? (
        <Heatmap
          data={heat}
          colormap={colormap.value}
          normalization="global"
          selectedLayer={selectedLayer.value}
          onSelectLayer={(layer) => {
            selectedLayer.value = layer;
          }}
          onSelectCell={(layer, col) => {
            selectedLayer.value = layer;
            gradStep.value = data.steps[col];
          }}
          markColumn={gradStepIndex.value}
          statLabel={def.short}
          formatCell={(v) => formatValue(10 ** v)}
          dark={darkMode.value}
        />
      ) : (
        <div class="ins-muted">No layer has this statistic in this run.</div>
      )}
    </section>
  );
}

const KIND_TEXT: Record<GradAlert["kind"], string> = {
  nan: "NaN gradients",
  inf: "Inf gradients",
  exploding: "exploding",
  vanishing: "vanishing",
};

function alertDetail(a: GradAlert, measure: string): string {
  if (a.kind === "nan" || a.kind === "inf") return `${formatValue(a.value)} ${a.kind === "nan" ? "NaN" : "Inf"} values`;
  const what = measure === "gradNorm" ? "‖∇w‖" : "‖∇out‖";
  const ratio = a.value !== null && a.median ? a.value / a.median : null;
  return `${what} ${formatValue(a.value)} = ${formatValue(ratio)} × median`;
}

function AlertsCard(props: { data: GradientsResponse }) {
  const list = alerts.value;
  const total = props.data.steps.length;
  const measure = alertMeasure.value;
  return (
    <section class="ins-card" data-testid="grad-alerts" data-count={list.length}>
      <div class="ins-card-head">
        <h2 class="ins-card-title">Alerts</h2>
        <span class="ins-card-sub">
          vanishing below 10<sup>{vanishExp.value}</sup> ×, exploding above 10<sup>{explodeExp.value}</sup> × the
          median {measure === "gradNorm" ? "parameter" : "output"} gradient norm of all layers at that step
        </span>
      </div>
      {list.length === 0 ? (
        <div class="ins-muted" data-testid="grad-alerts-none">
          No alerts: no NaN or Inf gradients, and every layer within the thresholds at every recorded step.
        </div>
      ) : (
        <ul class="ins-alerts">
          {list.map((a) => (
            <li key={a.kind + a.layer} class={"ins-alert " + a.kind} data-testid="grad-alert" data-kind={a.kind} data-layer={a.layer}>
              <span class={"ins-alert-kind " + a.kind}>{KIND_TEXT[a.kind]}</span>
              <button
                type="button"
                class="ins-link"
                data-testid="grad-alert-layer"
                title="Select this layer at the step the alert first appeared"
                onClick={() => {
                  selectedLayer.value = a.layer;
                  gradStep.value = a.firstStep;
                }}
              >
                {a.layer}
              </button>
              <span class="ins-alert-when">
                from step <b>{a.firstStep}</b>
                {a.count > 1 ? ` · ${a.count} of ${total} steps, last ${a.lastStep}` : ""}
              </span>
              <span class="ins-alert-detail ins-muted">{alertDetail(a, measure)}</span>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

/** A log-scaled value axis with ticks and labels from logFilter. */
function logAxis(dark: boolean): uPlot.Axis {
  const style = axisStyle(dark);
  return { ...style, size: 56, grid: { ...style.grid, filter: logFilter }, ticks: { ...style.ticks, filter: logFilter }, filter: logFilter, values: logValues };
}

function lineOptions(dark: boolean, series: uPlot.Series[], step: number | null): Omit<uPlot.Options, "width" | "height"> {
  const c = colors(dark);
  return {
    scales: { x: { time: false }, y: { distr: 3, log: 10 } },
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

function LayerCard(props: { data: GradientsResponse }) {
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

function NoGradients() {
  return (
    <section class="ins-card" data-testid="grad-empty">
      <h2 class="ins-card-title">No gradient records in this run</h2>
      <p class="ins-muted">
        Gradients are read from your own <code>loss.backward()</code> at the recorded steps of{" "}
        <code>writer.watch(model, every=10)</code> (on by default; <code>grads=False</code> turns it off). Steps
        run under <code>torch.no_grad()</code> have none.
      </p>
    </section>
  );
}

export function GradientView() {
  const state = gradients.value;
  const data = gradData.value;
  const run = selectedRun.value;
  if (state.error && !data) return <ErrorMessage title="Could not load the gradients" message={state.error} />;
  if (!data) return <div class="ins-loading">{state.loading ? "Loading gradients…" : ""}</div>;
  if (!data.steps.length) return <NoGradients />;
  return (
    <div class={data.run !== run ? "ins-stale" : ""} data-testid="grad-view" data-run={data.run}>
      {state.error ? <ErrorMessage title="Could not refresh the gradients" message={state.error} /> : null}
      {data.totalSteps !== undefined && data.totalSteps > data.steps.length ? (
        <div class="ins-hint" data-testid="grad-thinned">
          {data.steps.length} of {data.totalSteps} recorded steps shown in the overview (each column shows its last
          step; NaN/Inf are counted over the whole column). The layer charts show every step.
        </div>
      ) : null}
      <AlertsCard data={data} />
      <FlowCard data={data} />
      <GradHeatmapCard data={data} />
      <LayerCard data={data} />
    </div>
  );
}
