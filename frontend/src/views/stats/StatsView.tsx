// The activation-statistics view: the layer × step heatmap, and the selected layer's statistics over steps.
import { HeatmapCard } from "./HeatmapCard";
import { LayerChartsView } from "./LayerCharts";

export function ActivationStatsView() {
  return (
    <>
      <HeatmapCard />
      <LayerChartsView />
    </>
  );
}
