// State of the rank view: the family and statistic shown, the alert rule's settings, and the loaders of
// its routes (they fetch only while the view is shown).
import { computed, effect, signal } from "@preact/signals";
import { resource } from "../../core/resource";
import { activeView, idle, runs, selectedLayer, selectedRun, type Loadable } from "../../core/state";
import { GRAD_FIELDS, STAT_FIELDS } from "../../generated/fields";
import {
  fetchRankAlerts,
  fetchRankFamilies,
  fetchRankLayer,
  fetchRankSpread,
  type RankAlertsResponse,
  type RankFamily,
  type RankKind,
  type RankLayerResponse,
  type RankSpreadResponse,
} from "./api";
import { familyNames, rankOf } from "./math";

export const RANKS_VIEW = "ranks";
/** Columns of the heatmap: a longer family is thinned by the server (deviations: each column's maximum). */
export const RANK_COLUMNS = 300;
export const DEFAULT_THRESHOLD = 8;
export const DEFAULT_SUSTAIN = 3;

export const RANK_FIELDS: Record<RankKind, readonly string[]> = {
  activation: STAT_FIELDS.filter((f) => f !== "numel"),
  gradient: GRAD_FIELDS.filter((f) => !f.endsWith("Numel")),
};
const DEFAULT_STAT: Record<RankKind, string> = { activation: "std", gradient: "gradNorm" };
export type RankMeasure = "deviation" | "relativeSpread";

export function isRankKind(s: string): s is RankKind {
  return s === "activation" || s === "gradient";
}

// Selection and settings
/** The family picked (null: the selected run's family, else the first). */
export const chosenFamily = signal<string | null>(null);
export const rankKind = signal<RankKind>("activation");
export const rankStatChoice = signal<string>(DEFAULT_STAT.activation);
export const rankMeasure = signal<RankMeasure>("deviation");
export const rankThreshold = signal(DEFAULT_THRESHOLD);
export const rankSustain = signal(DEFAULT_SUSTAIN);

/** Families among the runs (the view is listed only when there is one). */
export const familyList = computed(() => familyNames((runs.value.data ?? []).map((r) => r.run)));
export const hasFamily = computed(() => familyList.value.length > 0);

export const shownFamily = computed<string | null>(() => {
  const list = familyList.value;
  const chosen = chosenFamily.value;
  if (chosen !== null && list.includes(chosen)) return chosen;
  const own = selectedRun.value === null ? null : rankOf(selectedRun.value);
  if (own && list.includes(own.family)) return own.family;
  return list[0] ?? null;
});

export const rankStat = computed(() => {
  const stat = rankStatChoice.value;
  return RANK_FIELDS[rankKind.value].includes(stat) ? stat : DEFAULT_STAT[rankKind.value];
});

// Data
export const rankFamilies = signal<Loadable<{ families: RankFamily[] }>>(idle());
export const rankSpread = signal<Loadable<RankSpreadResponse>>(idle());
export const rankAlerts = signal<Loadable<RankAlertsResponse>>(idle());
export const rankLayer = signal<Loadable<RankLayerResponse>>(idle());

export const familyInfo = computed<RankFamily | null>(
  () => rankFamilies.value.data?.families.find((f) => f.family === shownFamily.value) ?? null,
);

/** The spread of the shown family (another family's is ignored until the new one arrives). */
export const spreadData = computed<RankSpreadResponse | null>(() => {
  const d = rankSpread.value.data;
  return d && d.family === shownFamily.value ? d : null;
});

/** What the heatmap colours: deviations need three ranks, the relative spread works with two. */
export const shownMeasure = computed<RankMeasure>(() => {
  const d = spreadData.value;
  return d && d.ranks.length < 3 ? "relativeSpread" : rankMeasure.value;
});

/** The layer of the per-rank chart: the selected one when the family has it, else the first. */
export const chartLayer = computed<string | null>(() => {
  const d = spreadData.value;
  if (!d || !d.layers.length) return null;
  const layer = selectedLayer.value;
  return layer !== null && d.layers.some((l) => l.name === layer) ? layer : d.layers[0].name;
});

let started = false;

export function startRankLoaders(): void {
  if (started) return;
  started = true;
  // A link to this view on a logdir without a family (once the runs are known): the default view instead.
  effect(() => {
    if (activeView.value === RANKS_VIEW && runs.value.data && !hasFamily.value) activeView.value = "model";
  });
  const active = () => activeView.value === RANKS_VIEW && shownFamily.value !== null;
  resource(rankFamilies, () => (activeView.value === RANKS_VIEW ? [] : null), (_k, signal) => fetchRankFamilies(signal), true);
  resource(
    rankSpread,
    () => (active() ? [shownFamily.value!, rankKind.value, rankStat.value] : null),
    ([family, kind, stat], signal) => fetchRankSpread(family, kind as RankKind, stat, RANK_COLUMNS, signal),
    true,
  );
  resource(
    rankAlerts,
    (): [string, number, number] | null => (active() ? [shownFamily.value!, rankThreshold.value, rankSustain.value] : null),
    ([family, threshold, sustain], signal) => fetchRankAlerts(family, threshold, sustain, signal),
    true,
  );
  resource(
    rankLayer,
    () => {
      const d = spreadData.value;
      const layer = chartLayer.value;
      return active() && d && layer !== null ? [d.family, d.kind ?? rankKind.value, d.stat, layer] : null;
    },
    ([family, kind, stat, layer], signal) => fetchRankLayer(family, kind as RankKind, stat, layer, signal),
    true,
  );
}
