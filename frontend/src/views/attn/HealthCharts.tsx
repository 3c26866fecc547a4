// Attention health over steps: per module, each head's normalised entropy and max pre-softmax logit
// (one line per head), and the alerts they raise with thresholds the user can change.
import type { AttentionAlert, AttentionStatsResponse } from "./api";

const W = 260;
const H = 70;

function line(values: (number | null)[], steps: number[], low: number, high: number): string {
  const first = steps[0] ?? 0;
  const span = Math.max(1, (steps[steps.length - 1] ?? 0) - first);
  const range = high - low || 1;
  return values
    .map((v, i) => (v === null ? null : `${(((steps[i] - first) / span) * W).toFixed(1)},${(H - ((v - low) / range) * H).toFixed(1)}`))
    .filter((p): p is string => p !== null)
    .join(" ");
}

function Chart(props: { title: string; heads: (number | null)[][]; steps: number[]; fixed?: [number, number]; testid: string }) {
  const all = props.heads.flat().filter((v): v is number => v !== null);
  const [low, high] = props.fixed ?? [Math.min(0, ...all), Math.max(1e-9, ...all)];
  return (
    <figure class="ins-attn-chart" data-testid={props.testid}>
      <figcaption>
        {props.title} <span class="ins-muted">[{low.toPrecision(3)}, {high.toPrecision(3)}]</span>
      </figcaption>
      <svg width={W} height={H} viewBox={`0 0 ${W} ${H}`} role="img" aria-label={props.title}>
        {props.heads.map((values, h) => (
          <polyline
            key={h}
            fill="none"
            stroke={`hsl(${(h * 67) % 360} 70% 45%)`}
            stroke-width="1.5"
            points={line(values, props.steps, low, high)}
          >
            <title>{`head ${h}`}</title>
          </polyline>
        ))}
      </svg>
    </figure>
  );
}

const KIND_TEXT: Record<AttentionAlert["kind"], string> = {
  entropy_collapse: "entropy collapse",
  logit_growth: "attention-logit growth",
};

export function AlertsList(props: { alerts: AttentionAlert[] }) {
  if (!props.alerts.length) return <div class="ins-muted" data-testid="attn-alerts-none">No attention alerts.</div>;
  return (
    <ul class="ins-attn-alerts" data-testid="attn-alerts">
      {props.alerts.map((a) => (
        <li key={`${a.kind}/${a.layer}/${a.head}`} data-testid="attn-alert">
          <b>{KIND_TEXT[a.kind]}</b> in {a.layer}, head {a.head}: from step {a.first_step} ({a.value.toPrecision(3)}{" "}
          {a.kind === "entropy_collapse" ? "<" : ">"} {a.threshold.toPrecision(3)})
        </li>
      ))}
    </ul>
  );
}

export function HealthCharts(props: { stats: AttentionStatsResponse }) {
  const { stats } = props;
  return (
    <div class="ins-attn-health" data-testid="attn-health">
      {stats.layers.map((layer, l) => (
        <div class="ins-attn-health-row" key={layer.layer}>
          <div class="ins-attn-layer-name">{layer.layer}</div>
          <Chart title="entropy / log(keys)" heads={stats.entropy[l]} steps={stats.steps} fixed={[0, 1]} testid={`attn-entropy-${l}`} />
          <Chart title="max logit" heads={stats.maxLogit[l]} steps={stats.steps} testid={`attn-logit-${l}`} />
        </div>
      ))}
    </div>
  );
}
