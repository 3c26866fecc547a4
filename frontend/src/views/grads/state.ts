// State of the gradient view: its settings, the run's gradient statistics (fetched only while the
// view is shown), and what the cards derive from them (the shown step, the alerts).
import { computed, signal } from "@preact/signals";
import { resource, sampledThenExact } from "../../core/resource";
import { activeView, idle, selectedLayer, selectedRun, type Loadable } from "../../core/state";
import { autoDepth, buildLayerTree, initialFold, matchesFilter, treeDepth, type Aggregate, type FoldState } from "../../lib/layer_groups";
import { stepIndexAtOrBefore } from "../../lib/steps";
import { fetchGradients, type GradField, type GradientsResponse } from "./api";
import { findAlerts, type GradAlert } from "./math";
import { fetchGradientNoise } from "./noise";

export const GRAD_VIEW = "grads";

export interface HeatmapFieldDef {
  id: GradField;
  label: string;
  short: string;
}

/** Statistics the layer × step heatmap can show (all positive magnitudes: coloured on a log scale). */
export const HEATMAP_FIELDS: HeatmapFieldDef[] = [
  { id: "gradNorm", label: "Parameter gradient norm", short: "‖∇w‖" },
  { id: "actGradNorm", label: "Output gradient norm", short: "‖∇out‖" },
  { id: "updateRatio", label: "Update ratio ‖Δw‖/‖w‖", short: "‖Δw‖/‖w‖" },
  { id: "gradMeanAbs", label: "Parameter mean |g|", short: "mean |g|" },
  { id: "gradMaxAbs", label: "Parameter max |g|", short: "max |g|" },
  { id: "weightNorm", label: "Weight norm ‖w‖", short: "‖w‖" },
];
export const DEFAULT_HEATMAP_FIELD: GradField = "gradNorm";
/** How a folded group of layers combines each heatmap field per step: norms and maxima by their max, mean
 * |g| by the mean. */
export const GRAD_AGGREGATE: Record<string, Aggregate> = {
  gradNorm: "max",
  actGradNorm: "max",
  updateRatio: "max",
  gradMeanAbs: "mean",
  gradMaxAbs: "max",
  weightNorm: "max",
};
export const MEASURES = ["gradNorm", "actGradNorm"] as const satisfies readonly GradField[];
export type Measure = (typeof MEASURES)[number];
export const DEFAULT_VANISH_EXP = -3;
export const DEFAULT_EXPLODE_EXP = 3;

export function isHeatmapField(s: string): boolean {
  return HEATMAP_FIELDS.some((f) => f.id === s);
}

export function isMeasure(s: string): s is Measure {
  return (MEASURES as readonly string[]).includes(s);
}

// Selection and settings
/** The requested step; the shown one is the recorded step at or before it (null: the last). */
export const gradStep = signal<number | null>(null);
export const gradField = signal<string>(DEFAULT_HEATMAP_FIELD);
export const alertMeasure = signal<Measure>("gradNorm");
/** Thresholds as powers of ten of the model's median at each step. */
export const vanishExp = signal(DEFAULT_VANISH_EXP);
export const explodeExp = signal(DEFAULT_EXPLODE_EXP);
/** How the view's rows (alerts, flow chart bars, heatmap rows) group by module: depth, overrides, filter. */
export const gradsFold = signal<FoldState>(initialFold());

/** Columns of the overview (heatmap, alerts, step slider): a run with more recorded steps is thinned by
 * the server (NaN/Inf counts kept as each column's maximum); the layer card loads its layer in full. */
export const OVERVIEW_COLUMNS = 300;
/** What the overview cards use (the heatmap's fields, the alerts' measures and NaN/Inf counts). */
export const OVERVIEW_FIELDS = [
  "gradNorm",
  "gradMeanAbs",
  "gradMaxAbs",
  "gradNanCount",
  "gradInfCount",
  "weightNorm",
  "updateRatio",
  "actGradNorm",
  "actGradNanCount",
  "actGradInfCount",
] as const satisfies readonly GradField[];
export const LAYER_FIELDS = ["gradNorm", "actGradNorm", "updateRatio"] as const satisfies readonly GradField[];

// Data
export const gradients = signal<Loadable<GradientsResponse>>(idle());
/** The run's gradient noise records (distributed runs; no layers otherwise). */
export const gradNoise = signal<Loadable<GradientsResponse>>(idle());
/** The selected layer at every recorded step (only LAYER_FIELDS). */
export const gradLayer = signal<Loadable<GradientsResponse>>(idle());

/** The selected run's statistics (those of another run are ignored until the new ones arrive). */
export const gradData = computed<GradientsResponse | null>(() => {
  const d = gradients.value.data;
  return d && d.run === selectedRun.value ? d : null;
});

export const gradStepIndex = computed(() => stepIndexAtOrBefore(gradData.value?.steps ?? [], gradStep.value));
export const shownGradStep = computed<number | null>(() => {
  const i = gradStepIndex.value;
  return i >= 0 ? gradData.value!.steps[i] : null;
});

/** The run's layers grouped by module prefix (lib/layer_groups). */
export const gradTree = computed(() => {
  const d = gradData.value;
  return d ? buildLayerTree(d.layers.map((l) => l.name)) : null;
});
export const gradTreeDepth = computed(() => (gradTree.value ? treeDepth(gradTree.value) : 0));

/** Whether layer i passes the view's filter (name or module type). */
export const gradFilter = computed(() => {
  const d = gradData.value;
  const filter = gradsFold.value.filter;
  return (i: number) => !!d && matchesFilter(filter, d.layers[i].name, d.layers[i].moduleType);
});

/** The fold depth in effect: the chosen one, else the deepest that shows at most ~60 rows. */
export const gradFoldDepth = computed(() => {
  const tree = gradTree.value;
  const chosen = gradsFold.value.depth;
  return chosen ?? (tree ? autoDepth(tree, gradFilter.value) : 1);
});

export const alerts = computed<GradAlert[]>(() => {
  const d = gradData.value;
  if (!d) return [];
  return findAlerts(d, { measure: alertMeasure.value, vanish: 10 ** vanishExp.value, explode: 10 ** explodeExp.value });
});

let started = false;

export function startGradLoaders(): void {
  if (started) return;
  started = true;
  resource(
    gradients,
    () => (activeView.value === GRAD_VIEW && selectedRun.value !== null ? [selectedRun.value] : null),
    sampledThenExact(([run], signal) => fetchGradients(run, { maxSteps: OVERVIEW_COLUMNS, fields: OVERVIEW_FIELDS }, signal)),
    true,
  );
  resource(
    gradNoise,
    () => (activeView.value === GRAD_VIEW && selectedRun.value !== null ? [selectedRun.value] : null),
    ([run], signal) => fetchGradientNoise(run, signal),
    true,
  );
  resource(
    gradLayer,
    () => {
      // Only when the overview is thinned (else it holds every step) and has gradients of the layer.
      const d = gradData.value;
      const layer = selectedLayer.value;
      if (activeView.value !== GRAD_VIEW || !d || layer === null) return null;
      if ((d.totalSteps ?? 0) <= d.steps.length || !d.layers.some((l) => l.name === layer)) return null;
      return [d.run, layer];
    },
    sampledThenExact(([run, layer], signal) => fetchGradients(run, { layer, fields: LAYER_FIELDS }, signal)),
    true,
  );
}

/** The selected run's gradient noise records (null until they arrive, or when the run has none). */
export const gradNoiseData = computed<GradientsResponse | null>(() => {
  const d = gradNoise.value.data;
  return d && d.run === selectedRun.value && d.layers.length ? d : null;
});

/** The selected layer's full series, once it has arrived for the current run and layer. */
export const gradLayerData = computed<GradientsResponse | null>(() => {
  const d = gradLayer.value.data;
  return d && d.run === selectedRun.value && d.layers[0]?.name === selectedLayer.value ? d : null;
});
