// The rank view: one distributed job's per-rank runs (`<name>/rank<r>`, InsightWriter(ranks="all"))
// side by side: which rank departs from the others, the spread per layer and step, each rank's line.
import { ErrorMessage } from "../../widgets/ErrorMessage";
import { stoppedEarly } from "./math";
import { RankAlertsCard } from "./RankAlertsCard";
import { RankLinesCard } from "./RankLinesCard";
import { SpreadHeatmapCard } from "./SpreadHeatmapCard";
import { familyInfo, rankSpread, shownFamily, spreadData } from "./state";

function FamilyCard(props: { family: string }) {
  const info = familyInfo.value;
  const early = info ? stoppedEarly(info.ranks, info.maxSteps) : [];
  const last = info ? Math.max(...info.maxSteps) : null;
  return (
    <section class="ins-card" data-testid="rank-family" data-family={props.family} data-ranks={info?.ranks.length ?? ""}>
      <div class="ins-card-head">
        <h2 class="ins-card-title">{props.family === "." ? "Ranks of this logdir" : props.family}</h2>
        {info ? (
          <span class="ins-card-sub">
            {info.ranks.length} ranks: {info.runs.join(", ")}
          </span>
        ) : null}
      </div>
      {early.length ? (
        <div class="ins-hint ins-hint-flat" data-testid="rank-stopped-early">
          Stopped early (the family's last step is {last}):{" "}
          {early.map((e) => `rank ${e.rank} at step ${e.last ?? "–"}`).join(", ")}. Later steps compare the other ranks.
        </div>
      ) : null}
    </section>
  );
}

export function RanksView() {
  const family = shownFamily.value;
  if (family === null) {
    return (
      <section class="ins-card" data-testid="rank-empty">
        <h2 class="ins-card-title">No per-rank runs</h2>
        <p class="ins-muted">
          Write one run per rank of a distributed job with <code>InsightWriter(log_dir, ranks="all")</code>: each rank
          writes <code>{"<log_dir>/rank<r>"}</code>, and this view compares them.
        </p>
      </section>
    );
  }
  const state = rankSpread.value;
  const data = spreadData.value;
  const stale = state.data !== null && (state.data.family !== family || state.loading);
  return (
    <div class={stale ? "ins-stale" : ""} data-testid="rank-view" data-family={family}>
      <FamilyCard family={family} />
      <RankAlertsCard />
      {state.error ? <ErrorMessage title="Could not load the spread across ranks" message={state.error} /> : null}
      {data ? <SpreadHeatmapCard data={data} /> : <div class="ins-loading">{state.loading ? "Loading the ranks…" : ""}</div>}
      {data ? <RankLinesCard /> : null}
    </div>
  );
}
