// The alerts card: layers with NaN or Inf gradients, or norms far below (vanishing) or above (exploding)
// the median of all layers at a step. Clicking a layer selects it at the step its alert began.
import { selectedLayer } from "../../core/state";
import { formatValue } from "../../lib/format";
import type { GradientsResponse } from "./api";
import type { GradAlert } from "./math";
import { alertMeasure, alerts, explodeExp, gradStep, vanishExp } from "./state";

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

export function AlertsCard(props: { data: GradientsResponse }) {
  const list = alerts.value;
  const total = props.data.steps.length;
  const measure = alertMeasure.value;
  return (
    <section class="ins-card" data-testid="grad-alerts" data-count={list.length}>
      <div class="ins-card-head">
        <h2 class="ins-card-title">Alerts</h2>
        <span class="ins-card-sub">
          vanishing below 10<sup>{vanishExp.value}</sup> ×, exploding above 10<sup>{explodeExp.value}</sup> × the
          median {measure === "gradNorm" ? "parameter" : "output"} gradient norm of all layers at that step
        </span>
      </div>
      {list.length === 0 ? (
        <div class="ins-muted" data-testid="grad-alerts-none">
          No alerts: no NaN or Inf gradients, and every layer within the thresholds at every recorded step.
        </div>
      ) : (
        <ul class="ins-alerts">
          {list.map((a) => (
            <li key={a.kind + a.layer} class={"ins-alert " + a.kind} data-testid="grad-alert" data-kind={a.kind} data-layer={a.layer}>
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
          ))}
        </ul>
      )}
    </section>
  );
}
