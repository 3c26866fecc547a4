// Line charts over steps for the selected layer (uPlot, cursor and x-zoom synced across charts).
import { useMemo } from "preact/hooks";
import uPlot from "uplot";
import { darkMode, selectedLayer, selectedRun } from "../../core/state";
import { axisStyle, stepAxis, stepSeries } from "../../lib/chart_axes";
import { formatShape, formatValue } from "../../lib/format";
import { ErrorMessage } from "../../widgets/ErrorMessage";
import { UPlotChart } from "../../widgets/UPlotChart";
import type { LayerStatsResponse } from "./api";
import type { LayerHealthResponse } from "./health_api";
import { layerHealth } from "./health_state";
import { layerStats } from "./state";

const SYNC_KEY = "insight-layer";

interface Palette {
  dark: boolean;
  mean: string;
  band: string;
  bandEdge: string;
  min: string;
  max: string;
  zero: string;
  nan: string;
  inf: string;
  health: string;
}

function palette(dark: boolean): Palette {
  // TensorBoard's run colours (webapp/util/colors.ts), in the same order of preference.
  return {
    dark,
    mean: "#e8710a",
    band: dark ? "rgba(232,113,10,0.22)" : "rgba(232,113,10,0.16)",
    bandEdge: "rgba(232,113,10,0.55)",
    min: "#12b5cb",
    max: "#e52592",
    zero: "#9334e6",
    nan: "#f44336",
    inf: dark ? "#f9ab00" : "#e37400",
    health: "#e52592",
  };
}

function tick(_u: uPlot, splits: number[]): string[] {
  return splits.map((v) => formatValue(v));
}

function baseOptions(p: Palette, series: uPlot.Series[], extra: Partial<uPlot.Options> = {}): Omit<uPlot.Options, "width" | "height"> {
  let syncing = false;
  return {
    scales: { x: { time: false } },
    axes: [stepAxis(p.dark), { ...axisStyle(p.dark), values: tick, size: 56 }],
    cursor: {
      sync: { key: SYNC_KEY, setSeries: false },
      drag: { x: true, y: false, setScale: true },
      points: { size: 6 },
    },
    legend: { live: true },
    series: [stepSeries(), ...series],
    hooks: {
      // Keep the x zoom the same on every chart of the layer.
      setScale: [
        (u, key) => {
          if (key !== "x" || syncing) return;
          const { min, max } = u.scales.x;
          if (min === undefined || max === undefined) return;
          syncing = true;
          try {
            for (const other of uPlotSync().plots) {
              if (other !== u && (other.scales.x.min !== min || other.scales.x.max !== max)) {
                other.setScale("x", { min, max });
              }
            }
          } finally {
            syncing = false;
          }
        },
      ],
    },
    ...extra,
  };
}

function uPlotSync(): uPlot.SyncPubSub {
  return uPlot.sync(SYNC_KEY);
}

function line(label: string, stroke: string, extra: Partial<uPlot.Series> = {}): uPlot.Series {
  return {
    label,
    stroke,
    width: 1.5,
    points: { show: false },
    value: (_u, v) => formatValue(v),
    ...extra,
  };
}

function chartsFor(data: LayerStatsResponse, p: Palette) {
  const xs = data.steps;
  const get = (k: string): (number | null)[] => data.stats[k] ?? xs.map(() => null);
  const mean = get("mean");
  const std = get("std");
  const hi = mean.map((m, i) => (m === null || std[i] === null ? null : m + (std[i] as number)));
  const lo = mean.map((m, i) => (m === null || std[i] === null ? null : m - (std[i] as number)));
  return [
    {
      id: "mean",
      title: "Mean ± std",
      data: [xs, mean, hi, lo] as uPlot.AlignedData,
      options: baseOptions(
        p,
        [
          line("mean", p.mean, { width: 2 }),
          line("mean + std", p.bandEdge, { width: 1 }),
          line("mean − std", p.bandEdge, { width: 1 }),
        ],
        { bands: [{ series: [2, 3], fill: p.band }] },
      ),
    },
    {
      id: "range",
      title: "Min, max and mean",
      data: [xs, get("min"), get("max"), mean] as uPlot.AlignedData,
      options: baseOptions(p, [
        line("min", p.min, { width: 2 }),
        line("max", p.max, { width: 2 }),
        line("mean", p.mean, { width: 1, dash: [4, 3] }),
      ]),
    },
    {
      id: "zero",
      title: "Zero fraction",
      data: [xs, get("zeroFraction")] as uPlot.AlignedData,
      options: baseOptions(p, [line("zeroFraction", p.zero, { width: 2 })], {
        scales: { x: { time: false }, y: { range: [0, 1] } },
      }),
    },
    {
      id: "nonfinite",
      title: "Non-finite values (count)",
      data: [xs, get("nanCount"), get("infCount")] as uPlot.AlignedData,
      options: baseOptions(p, [line("nanCount", p.nan, { width: 2 }), line("infCount", p.inf, { width: 2, dash: [5, 3] })], {
        scales: {
          x: { time: false },
          y: { range: (_u, _min, max) => [0, Math.max(1, max ?? 1) * 1.05] as uPlot.Range.MinMax },
        },
      }),
    },
  ];
}

/** The layer's transformer-health charts: peak-to-RMS over steps and, for token layers, the count of
 * massive channels (the channels of the latest step in the title). */
function healthCharts(h: LayerHealthResponse, p: Palette) {
  const xs = h.steps;
  const charts = [
    {
      id: "peakToRms",
      title: "Peak-to-RMS ratio (max |a| / RMS)",
      data: [xs, h.peakToRms] as uPlot.AlignedData,
      options: baseOptions(p, [line("peakToRms", p.health, { width: 2 })]),
    },
  ];
  if (h.massiveCount && h.massive && h.massiveCount.some((v) => v !== null)) {
    const last = h.massive.channels[h.massive.channels.length - 1] ?? [];
    const channels = last.length ? ` · now: channel${last.length > 1 ? "s" : ""} ${last.join(", ")}` : "";
    charts.push({
      id: "massiveCount",
      title: `Massive activations (channels above ${formatValue(h.massive.ratio)} × the median peak)${channels}`,
      data: [xs, h.massiveCount] as uPlot.AlignedData,
      options: baseOptions(p, [line("massiveCount", p.health, { width: 2 })], {
        scales: {
          x: { time: false },
          y: { range: (_u, _min, max) => [0, Math.max(1, max ?? 1) * 1.05] as uPlot.Range.MinMax },
        },
      }),
    });
  }
  return charts;
}

export function LayerChartsView() {
  const layer = selectedLayer.value;
  const state = layerStats.value;
  const dark = darkMode.value;
  const data = state.data;
  const health = layerHealth.value.data;
  const charts = useMemo(() => {
    if (!data) return [];
    const own = chartsFor(data, palette(dark));
    const fits = health && health.run === data.run && health.layer === data.layer;
    return fits ? [...own, ...healthCharts(health, palette(dark))] : own;
  }, [data, health, dark]);

  if (layer === null) {
    return (
      <section class="ins-card" data-testid="layer-charts-empty">
        <div class="ins-muted">Click a layer name (or a heatmap row) to see its statistics over steps.</div>
      </section>
    );
  }
  return (
    <section class="ins-card" data-testid="layer-charts" data-layer={data?.layer ?? ""}>
      <div class="ins-card-head">
        <h2 class="ins-card-title">{layer}</h2>
        {data && data.layer === layer ? (
          <span class="ins-card-sub">
            {[data.moduleType, formatShape(data.shape), `${data.steps.length} steps`].filter(Boolean).join(" · ")}
          </span>
        ) : null}
        <span class="ins-spacer" />
        {state.loading ? <span class="ins-loading">Loading…</span> : null}
      </div>
      {state.error ? <ErrorMessage title={`Could not load the statistics of this layer`} message={state.error} /> : null}
      {data ? (
        <div class={"ins-charts" + (data.run !== selectedRun.value || data.layer !== layer ? " ins-stale" : "")}>
          {charts.map((c) => (
            <div class="ins-chart" key={c.id + (dark ? "-dark" : "-light")} data-chart={c.id}>
              <div class="ins-chart-title">{c.title}</div>
              <UPlotChart options={c.options} data={c.data} height={200} />
            </div>
          ))}
        </div>
      ) : null}
    </section>
  );
}
