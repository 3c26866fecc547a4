import { HeatmapView } from "./HeatmapView";
import { LayerChartsView } from "./LayerCharts";
export { StatsSettings as ActivationStatsSettings } from "./Sidebar";

export function ActivationStatsView() {
  return (
    <>
      <HeatmapView />
      <LayerChartsView />
    </>
  );
}
