// The "Transformer health" card: alerts of every health source (massive activations, peak-to-RMS; the
// attention alerts join the same list), each with the step it began, and the thresholds they use,
// adjustable here (kept in the deep link, sent to /health_alerts). Clicking a layer selects it.
import { useState } from "preact/hooks";
import { selectedLayer } from "../../core/state";
import { formatValue } from "../../lib/format";
import { ErrorMessage } from "../../widgets/ErrorMessage";
import type { HealthAlert } from "./health_api";
import { HEALTH_THRESHOLDS, healthAlerts, healthThresholds, type HealthThreshold } from "./health_state";

/** Alerts listed before "show all". */
const SHOWN = 12;

const KIND_TEXT: Record<string, string> = {
  massive_activations: "massive activations",
  peak_to_rms: "peak-to-RMS",
  entropy_collapse: "attention entropy collapse",
  logit_growth: "attention-logit growth",
};

function detail(a: HealthAlert): string {
  if (a.kind === "massive_activations") {
    const channels = a.channels && a.channels.length ? `channel${a.channels.length > 1 ? "s" : ""} ${a.channels.join(", ")}: ` : "";
    return `${channels}peak ${formatValue(a.value)} × the median channel peak (threshold ${formatValue(a.threshold)})`;
  }
  if (a.kind === "peak_to_rms") return `max |a| = ${formatValue(a.value)} × RMS (threshold ${formatValue(a.threshold)})`;
  if (a.kind === "entropy_collapse") return `normalised entropy ${formatValue(a.value)} (threshold ${formatValue(a.threshold)}) on the probe`;
  if (a.kind === "logit_growth") return `max logit ${formatValue(a.value)} (above ${formatValue(a.threshold)}: the growth threshold × its first value)`;
  return `${formatValue(a.value)} (threshold ${formatValue(a.threshold)})`;
}

function AlertItem(props: { a: HealthAlert }) {
  const { a } = props;
  return (
    <li class={"ins-alert " + a.kind} data-testid="health-alert" data-kind={a.kind} data-layer={a.layer} data-first-step={a.first_step}>
      <span class={"ins-alert-kind " + a.kind}>{KIND_TEXT[a.kind] ?? a.kind.replace(/_/g, " ")}</span>
      <button
        type="button"
        class="ins-link"
        data-testid="health-alert-layer"
        title="Select this layer: its charts below show the health numbers over steps"
        onClick={() => {
          selectedLayer.value = a.layer;
        }}
      >
        {a.layer}
        {a.head !== null && a.head !== undefined ? ` · head ${a.head}` : ""}
      </button>
      <span class="ins-alert-when">
        from step <b>{a.first_step}</b>
        {a.steps !== undefined && a.steps > 1 ? ` · ${a.steps} steps, last ${a.last_step}` : ""}
      </span>
      <span class="ins-alert-detail ins-muted">{detail(a)}</span>
    </li>
  );
}

function ThresholdInput(props: { t: HealthThreshold }) {
  const { t } = props;
  const current = healthThresholds.value[t.param];
  const [text, setText] = useState<string | null>(null);
  const shown = text ?? String(current);
  const value = Number(shown);
  const valid = Number.isFinite(value) && value >= t.min && value <= t.max;
  const commit = () => {
    if (valid && value !== current) healthThresholds.value = { ...healthThresholds.value, [t.param]: value };
    setText(null);
  };
  return (
    <label title={t.help}>
      {t.label}
      <input
        class={"ins-input" + (valid ? "" : " ins-invalid")}
        type="number"
        min={t.min}
        step="any"
        value={shown}
        data-testid={"health-threshold-" + t.param}
        onInput={(e) => setText((e.target as HTMLInputElement).value)}
        onChange={commit}
        onKeyDown={(e) => {
          if (e.key === "Enter") commit();
        }}
      />
      ×
    </label>
  );
}

export function HealthAlertsCard() {
  const state = healthAlerts.value;
  const data = state.data;
  const [all, setAll] = useState(false);
  const alerts = data?.alerts ?? [];
  const shown = all ? alerts : alerts.slice(0, SHOWN);
  return (
    <section class="ins-card" data-testid="health-alerts" data-count={data ? alerts.length : ""}>
      <div class="ins-card-head">
        <h2 class="ins-card-title">Transformer health</h2>
        <span class="ins-card-sub">alerts at the statistics steps, each from the first step it held</span>
        <span class="ins-spacer" />
        {state.loading ? <span class="ins-loading">Loading…</span> : null}
      </div>
      <div class="ins-health-thresholds">
        {HEALTH_THRESHOLDS.map((t) => (
          <ThresholdInput key={t.param} t={t} />
        ))}
      </div>
      {state.error ? <ErrorMessage title="Could not load the health alerts" message={state.error} /> : null}
      {data && alerts.length === 0 ? (
        <div class="ins-muted" data-testid="health-alerts-none">
          No alerts: no layer above the thresholds at any recorded step.
        </div>
      ) : null}
      {alerts.length > 0 ? (
        <ul class="ins-alerts">
          {shown.map((a) => (
            <AlertItem key={a.kind + "\u0000" + a.layer + "\u0000" + String(a.head)} a={a} />
          ))}
        </ul>
      ) : null}
      {alerts.length > SHOWN ? (
        <button type="button" class="ins-link" data-testid="health-alerts-more" onClick={() => setAll(!all)}>
          {all ? "Show fewer" : `Show all ${alerts.length} alerts`}
        </button>
      ) : null}
    </section>
  );
}
