// The activation-statistics view: the layer × step heatmap, the transformer-health alerts, and the
// selected layer's statistics (with its health numbers) over steps.
import { HealthAlertsCard } from "./HealthAlertsCard";
import { HeatmapCard } from "./HeatmapCard";
import { LayerChartsView } from "./LayerCharts";

export function ActivationStatsView() {
  return (
    <>
      <HeatmapCard />
      <HealthAlertsCard />
      <LayerChartsView />
    </>
  );
}
