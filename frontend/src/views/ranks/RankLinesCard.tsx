// One layer's statistic on every rank over steps: a line per rank and the ranks' median (dashed); the
// ranks that depart in it are drawn thicker.
import { useMemo } from "preact/hooks";
import uPlot from "uplot";
import { darkMode } from "../../core/state";
import { axisStyle, stepAxis, stepSeries } from "../../lib/chart_axes";
import { formatValue } from "../../lib/format";
import { UPlotChart } from "../../widgets/UPlotChart";
import { chartLayer, rankAlerts, rankLayer } from "./state";

// TensorBoard's run palette (as the run list), one colour per rank.
const PALETTE = ["#425066", "#12b5cb", "#e52592", "#f9ab00", "#9334e6", "#7cb342", "#e8710a", "#3f51b5", "#00897b", "#c2185b"];

export function RankLinesCard() {
  const layer = chartLayer.value;
  const state = rankLayer.value;
  const data = state.data && state.data.layer === layer ? state.data : null;
  const dark = darkMode.value;
  const alerts = rankAlerts.value.data;
  const departing = useMemo(() => {
    const found = new Set<number>();
    for (const a of alerts?.alerts ?? []) if (data && a.layer === data.layer && a.stat === data.stat && a.kind === data.kind) found.add(a.rank);
    return found;
  }, [alerts, data]);
  const chart = useMemo(() => {
    if (!data) return null;
    const series: uPlot.Series[] = data.ranks.map((rank, r) => ({
      label: `rank ${rank}`,
      stroke: PALETTE[r % PALETTE.length],
      width: departing.has(rank) ? 3 : 1.5,
      points: { show: data.steps.length < 2 },
      value: (_u, v) => formatValue(v),
    }));
    series.push({ label: "median", stroke: dark ? "#fff" : "#000", width: 1, dash: [4, 4], value: (_u, v) => formatValue(v) });
    const options: Omit<uPlot.Options, "width" | "height"> = {
      scales: { x: { time: false } },
      axes: [stepAxis(dark), { ...axisStyle(dark), size: 56, values: (_u, splits) => splits.map((v) => formatValue(v)) }],
      cursor: { drag: { x: true, y: false, setScale: true }, points: { size: 6 } },
      legend: { live: true },
      series: [stepSeries(), ...series],
    };
    return { options, data: [data.steps, ...data.values, data.median] as uPlot.AlignedData };
  }, [data, dark, departing]);
  return (
    <section class="ins-card" data-testid="rank-lines" data-layer={data?.layer ?? ""} data-stat={data?.stat ?? ""} data-ranks={data?.ranks.length ?? 0}>
      <div class="ins-card-head">
        <h2 class="ins-card-title">{layer ?? ""}</h2>
        {data ? (
          <span class="ins-card-sub">
            {data.moduleType} · {data.kind} {data.stat} on each rank
            {departing.size ? ` · departing: ${[...departing].map((r) => `rank ${r}`).join(", ")}` : ""}
          </span>
        ) : null}
      </div>
      {chart && data ? (
        <div class="ins-chart" key={`${data.family}-${data.kind}-${data.stat}-${data.layer}-${dark}-${departing.size}`}>
          <UPlotChart options={chart.options} data={chart.data} height={240} />
        </div>
      ) : (
        <div class="ins-muted">{state.error ?? (state.loading ? "Loading…" : "Click a heatmap row or an alert to see that layer on every rank.")}</div>
      )}
    </section>
  );
}
