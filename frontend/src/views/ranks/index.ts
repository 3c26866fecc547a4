// The rank view: a distributed job's per-rank runs compared (listed only when the logdir has a family).
import type { ViewDef } from "../../core/view";
import { RankSettings } from "./RankSettings";
import { RanksView } from "./RanksView";
import { hasFamily, RANKS_VIEW, startRankLoaders } from "./state";
import { rankUrlState } from "./url";

export const ranksView: ViewDef = {
  id: RANKS_VIEW,
  title: "Ranks",
  component: RanksView,
  settings: RankSettings,
  start: startRankLoaders,
  url: rankUrlState,
  available: () => hasFamily.value,
};
