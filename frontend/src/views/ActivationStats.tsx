import { HeatmapView } from "./HeatmapView";
import { LayerChartsView } from "./LayerCharts";

export function ActivationStatsView() {
  return (
    <>
      <HeatmapView />
      <LayerChartsView />
    </>
  );
}
