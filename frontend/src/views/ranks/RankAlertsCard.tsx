// The departure alerts of a family: per rank a summary, then each (rank, layer, statistic) that departs
// from the other ranks, first step first. Clicking one shows that layer and statistic on every rank.
import { selectedLayer } from "../../core/state";
import { formatValue } from "../../lib/format";
import { ErrorMessage } from "../../widgets/ErrorMessage";
import type { RankAlert, RankAlertsResponse } from "./api";
import { rankAlerts, rankKind, rankStatChoice, shownFamily } from "./state";

const SHOWN = 200;

function AlertItem(props: { a: RankAlert }) {
  const { a } = props;
  return (
    <li class="ins-alert rank" data-testid="rank-alert" data-rank={a.rank} data-layer={a.layer} data-stat={a.stat} data-kind={a.kind}>
      <span class="ins-alert-kind">rank {a.rank}</span>
      <button
        type="button"
        class="ins-link"
        data-testid="rank-alert-layer"
        title="Show this layer and statistic on every rank"
        onClick={() => {
          rankKind.value = a.kind;
          rankStatChoice.value = a.stat;
          selectedLayer.value = a.layer;
        }}
      >
        {a.layer}
      </button>
      <span class="ins-alert-when">
        {a.kind} {a.stat} · from step <b>{a.firstStep}</b>
        {a.steps > 1 ? ` · ${a.steps} steps, last ${a.lastStep}` : ""}
      </span>
      <span class="ins-alert-detail ins-muted">
        {formatValue(a.value)} vs median {formatValue(a.median)} ({formatValue(a.deviation)} × the ranks' spread)
      </span>
    </li>
  );
}

function Summary(props: { data: RankAlertsResponse }) {
  return (
    <ul class="ins-rank-summary" data-testid="rank-departing">
      {props.data.departingRanks.map((r) => (
        <li key={r.rank} data-testid="rank-departing-rank" data-rank={r.rank}>
          <b>rank {r.rank}</b> (<span class="ins-mono">{r.run}</span>) departs from the others from step <b>{r.firstStep}</b>:{" "}
          {r.alerts} {r.alerts === 1 ? "statistic" : "statistics"} in {r.layers} {r.layers === 1 ? "layer" : "layers"}
        </li>
      ))}
    </ul>
  );
}

export function RankAlertsCard() {
  const state = rankAlerts.value;
  const data = state.data && state.data.family === shownFamily.value ? state.data : null;
  return (
    <section class="ins-card" data-testid="rank-alerts" data-count={data ? data.totalAlerts : ""}>
      <div class="ins-card-head">
        <h2 class="ins-card-title">Departing ranks</h2>
        {data ? (
          <span class="ins-card-sub">
            a rank more than {formatValue(data.threshold)} × the ranks' spread from their median, at {data.sustain}{" "}
            consecutive recorded {data.sustain === 1 ? "step" : "steps"}
          </span>
        ) : null}
      </div>
      {state.error ? <ErrorMessage title="Could not check the ranks" message={state.error} /> : null}
      {!data ? (
        <div class="ins-muted">{state.loading ? "Comparing the ranks…" : ""}</div>
      ) : !data.named ? (
        <div class="ins-muted" data-testid="rank-alerts-unnamed">
          With two ranks neither can be named as the odd one (each is as far from their median as the other): the
          heatmap shows how far apart they are. Departures are found with three ranks or more.
        </div>
      ) : data.totalAlerts === 0 ? (
        <div class="ins-muted" data-testid="rank-alerts-none">
          No rank departs from the others in any activation or gradient statistic.
        </div>
      ) : (
        <>
          <Summary data={data} />
          <ul class="ins-alerts">
            {data.alerts.slice(0, SHOWN).map((a) => (
              <AlertItem key={`${a.rank}\u0000${a.kind}\u0000${a.layer}\u0000${a.stat}`} a={a} />
            ))}
          </ul>
          {data.totalAlerts > SHOWN ? (
            <div class="ins-hint ins-hint-flat">
              The first {SHOWN} of {data.totalAlerts} shown.
            </div>
          ) : null}
        </>
      )}
    </section>
  );
}
