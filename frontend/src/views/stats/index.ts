// The activation-statistics view: the layer × step heatmap and the selected layer's charts.
import type { ViewDef } from "../../core/view";
import { healthUrlState } from "./health_state";
import { startStatsLoaders, STATS_VIEW } from "./state";
import { StatsSettings } from "./StatsSettings";
import { ActivationStatsView } from "./StatsView";

export const statsView: ViewDef = {
  id: STATS_VIEW,
  title: "Activation statistics",
  component: ActivationStatsView,
  settings: StatsSettings,
  start: startStatsLoaders,
  url: healthUrlState,
};
