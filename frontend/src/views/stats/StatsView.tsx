// The activation-statistics view: the layer × step heatmap, and the selected layer's statistics over steps.
import { HeatmapView } from "./HeatmapCard";
import { LayerChartsView } from "./LayerCharts";

export function ActivationStatsView() {
  return (
    <>
      <HeatmapView />
      <LayerChartsView />
    </>
  );
}
