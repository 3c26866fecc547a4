// The layer panel's units section: the layer's dead and saturated channel fractions over steps.
import { useMemo } from "preact/hooks";
import type uPlot from "uplot";
import { darkMode } from "../../core/state";
import { axisStyle, stepAxis } from "../../lib/chart_axes";
import { UPlotChart } from "../../widgets/UPlotChart";
import type { LayerSectionProps } from "./LayerPanel";
import { unitData } from "./state";

/** Dead and saturated fractions of the layer over steps (when defined for its module type). */
export function UnitsSection(props: LayerSectionProps) {
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
