// The alerts card: layers with NaN or Inf gradients, or norms far below (vanishing) or above (exploding)
// the median of all layers at a step. Clicking a layer selects it at the step its alert began. Alerts of
// layers in a folded group (lib/layer_groups) show as one line per kind; unfolding it lists them.
import { useMemo } from "preact/hooks";
import { selectedLayer } from "../../core/state";
import { formatValue } from "../../lib/format";
import { toggleGroup, visibleEntries } from "../../lib/layer_groups";
import type { GradientsResponse } from "./api";
import type { ItemLine } from "../../lib/layer_groups";
import { groupAlerts, type GradAlert } from "./math";
import { alertMeasure, alerts, explodeExp, gradFilter, gradFoldDepth, gradsFold, gradStep, gradTree, vanishExp } from "./state";

const KIND_TEXT: Record<GradAlert["kind"], string> = {
  nan: "NaN gradients",
  inf: "Inf gradients",
  exploding: "exploding",
  vanishing: "vanishing",
};

function alertDetail(a: GradAlert, measure: string): string {
  if (a.kind === "nan" || a.kind === "inf") return `${formatValue(a.value)} ${a.kind === "nan" ? "NaN" : "Inf"} values`;
  const what = measure === "gradNorm" ? "‖∇w‖" : "‖∇out‖";
  const ratio = a.value !== null && a.median ? a.value / a.median : null;
  return `${what} ${formatValue(a.value)} = ${formatValue(ratio)} × median`;
}

function AlertItem(props: { a: GradAlert; measure: string; total: number }) {
  const { a, measure, total } = props;
  return (
    <li class={"ins-alert " + a.kind} data-testid="grad-alert" data-kind={a.kind} data-layer={a.layer}>
      <span class={"ins-alert-kind " + a.kind}>{KIND_TEXT[a.kind]}</span>
      <button
        type="button"
        class="ins-link"
        data-testid="grad-alert-layer"
        title="Select this layer at the step the alert first appeared"
        onClick={() => {
          selectedLayer.value = a.layer;
          gradStep.value = a.firstStep;
        }}
      >
        {a.layer}
      </button>
      <span class="ins-alert-when">
        from step <b>{a.firstStep}</b>
        {a.count > 1 ? ` · ${a.count} of ${total} steps, last ${a.lastStep}` : ""}
      </span>
      <span class="ins-alert-detail ins-muted">{alertDetail(a, measure)}</span>
    </li>
  );
}

function GroupLine(props: { line: ItemLine<GradAlert> }) {
  const { line } = props;
  const g = line.group!;
  const kind = line.kind as GradAlert["kind"];
  const first = line.items.reduce((m, a) => Math.min(m, a.firstStep), Infinity);
  return (
    <li class={"ins-alert " + kind} data-testid="grad-alert-group" data-kind={kind} data-group={g.key}>
      <span class={"ins-alert-kind " + kind}>{KIND_TEXT[kind]}</span>
      <button
        type="button"
        class="ins-link"
        data-testid="grad-alert-group-toggle"
        aria-expanded={false}
        title="Unfold this group to list its layers"
        onClick={() => {
          gradsFold.value = toggleGroup(gradsFold.value, g.key, true);
        }}
      >
        ▶ {g.label}
      </button>
      <span class="ins-alert-when">
        {line.items.length} of its {g.size} layers · from step <b>{first}</b>
      </span>
    </li>
  );
}

export function AlertsCard(props: { data: GradientsResponse }) {
  const all = alerts.value;
  const tree = gradTree.value;
  const filter = gradFilter.value;
  const fold = gradsFold.value;
  const depth = gradFoldDepth.value;
  const lines = useMemo(() => {
    if (!tree) return [];
    const entries = visibleEntries(tree, fold, { keep: filter }, depth);
    return groupAlerts(all, entries);
  }, [all, tree, filter, fold, depth]);
  const total = props.data.steps.length;
  const measure = alertMeasure.value;
  return (
    <section class="ins-card" data-testid="grad-alerts" data-count={all.length}>
      <div class="ins-card-head">
        <h2 class="ins-card-title">Alerts</h2>
        <span class="ins-card-sub">
          vanishing below 10<sup>{vanishExp.value}</sup> ×, exploding above 10<sup>{explodeExp.value}</sup> × the
          median {measure === "gradNorm" ? "parameter" : "output"} gradient norm of all layers at that step
        </span>
      </div>
      {all.length === 0 ? (
        <div class="ins-muted" data-testid="grad-alerts-none">
          No alerts: no NaN or Inf gradients, and every layer within the thresholds at every recorded step.
        </div>
      ) : (
        <ul class="ins-alerts">
          {lines.length === 0 ? <li class="ins-muted" data-testid="grad-alerts-filtered">No alert for the layers that match the filter.</li> : null}
          {lines.map((line) =>
            line.group ? (
              <GroupLine key={line.kind + "\u0000" + line.group.key} line={line} />
            ) : (
              <AlertItem key={line.kind + line.items[0].layer} a={line.items[0]} measure={measure} total={total} />
            ),
          )}
        </ul>
      )}
    </section>
  );
}
