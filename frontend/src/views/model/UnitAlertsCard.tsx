// The dead/saturated unit alerts of every layer, each with a sparkline of its fraction over steps.
// Clicking a layer opens its layer panel.
import { selectedLayer } from "../../core/state";
import { formatValue } from "../../lib/format";
import { ErrorMessage } from "../../widgets/ErrorMessage";
import type { UnitAlert } from "./math";
import { unitAlerts, unitStats } from "./state";

function Sparkline(props: { series: (number | null)[] }) {
  const w = 80;
  const h = 18;
  const n = props.series.length;
  const points = props.series
    .map((v, j) => (v === null ? null : `${n > 1 ? (j / (n - 1)) * w : w / 2},${h - v * h}`))
    .filter((p): p is string => p !== null)
    .join(" ");
  return (
    <svg class="ins-spark" width={w} height={h} viewBox={`0 0 ${w} ${h}`} aria-hidden="true">
      <polyline points={points} fill="none" stroke="currentColor" stroke-width="1.5" />
    </svg>
  );
}

const UNIT_TEXT: Record<UnitAlert["kind"], string> = { dead: "Dead channels", saturated: "Saturated channels" };

export function UnitAlertsCard() {
  const state = unitStats.value;
  const list = unitAlerts.value;
  return (
    <section class="ins-card" data-testid="unit-alerts" data-count={list.length}>
      <div class="ins-card-head">
        <h2 class="ins-card-title">Dead and saturated units</h2>
        <span class="ins-card-sub">measured on the recorded training batch of each recorded step</span>
      </div>
      {state.error ? <ErrorMessage title="Could not load the unit statistics" message={state.error} /> : null}
      {state.data && list.length === 0 ? (
        <div class="ins-muted" data-testid="unit-alerts-none">
          No dead or saturated channels at any recorded step.
        </div>
      ) : null}
      {list.length ? (
        <ul class="ins-alerts">
          {list.map((a) => (
            <li key={a.kind + a.layer} class={"ins-alert " + a.kind} data-testid="unit-alert" data-kind={a.kind} data-layer={a.layer}>
              <span class="ins-alert-kind">{UNIT_TEXT[a.kind]}</span>
              <button type="button" class="ins-link" data-testid="unit-alert-layer" onClick={() => {
                  selectedLayer.value = a.layer;
                }}>
                {a.layer}
              </button>
              <span class="ins-alert-when">
                since step <b>{a.firstStep}</b>
              </span>
              <span class="ins-alert-detail ins-muted">{`now ${formatValue(a.last === null ? null : Math.round(a.last * 1000) / 10)}% · max ${formatValue(Math.round(a.max * 1000) / 10)}%`}</span>
              <Sparkline series={a.series} />
            </li>
          ))}
        </ul>
      ) : null}
    </section>
  );
}
