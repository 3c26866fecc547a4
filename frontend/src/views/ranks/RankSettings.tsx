// Left-panel settings of the rank view: the family, the statistic, what the heatmap colours and the
// departure rule (threshold in MADs, consecutive steps).
import { colormap } from "../../core/state";
import { ColormapField, RangeField, SelectField } from "../../widgets/fields";
import { isRankKind, chosenFamily, familyList, RANK_FIELDS, rankKind, rankMeasure, rankStat, rankStatChoice, rankSustain, rankThreshold, shownFamily, shownMeasure, type RankMeasure } from "./state";

export function RankSettings() {
  return (
    <>
      <div class="ins-section">
        <div class="ins-section-title">Family</div>
        <SelectField
          id="ins-rank-family"
          label="Job"
          testid="rank-family-select"
          value={shownFamily.value ?? ""}
          options={familyList.value.map((f) => ({ value: f, label: f === "." ? "(logdir)" : f }))}
          onChange={(v) => {
            chosenFamily.value = v;
          }}
        />
        <SelectField
          id="ins-rank-kind"
          label="Records"
          testid="rank-kind-select"
          value={rankKind.value}
          options={[
            { value: "activation", label: "activations" },
            { value: "gradient", label: "gradients" },
          ]}
          onChange={(v) => {
            if (isRankKind(v)) rankKind.value = v;
          }}
        />
        <SelectField
          id="ins-rank-stat"
          label="Statistic"
          testid="rank-stat-select"
          value={rankStat.value}
          options={RANK_FIELDS[rankKind.value].map((f) => ({ value: f, label: f }))}
          onChange={(v) => {
            rankStatChoice.value = v;
          }}
        />
        <SelectField
          id="ins-rank-measure"
          label="Heatmap"
          testid="rank-measure-select"
          value={shownMeasure.value}
          options={[
            { value: "deviation", label: "largest deviation" },
            { value: "relativeSpread", label: "relative spread" },
          ]}
          onChange={(v) => {
            rankMeasure.value = v as RankMeasure;
          }}
        />
        <ColormapField
          id="ins-rank-cmap"
          value={colormap.value}
          onChange={(c) => {
            colormap.value = c;
          }}
        />
      </div>
      <div class="ins-section">
        <div class="ins-section-title">Departures</div>
        <RangeField
          id="ins-rank-threshold"
          label="Threshold"
          testid="rank-threshold"
          min={2}
          max={64}
          step={1}
          value={rankThreshold.value}
          shown={<>{rankThreshold.value} × MAD</>}
          onInput={(v) => {
            rankThreshold.value = v;
          }}
        />
        <RangeField
          id="ins-rank-sustain"
          label="For"
          testid="rank-sustain"
          min={1}
          max={10}
          step={1}
          value={rankSustain.value}
          shown={<>{rankSustain.value} steps</>}
          onInput={(v) => {
            rankSustain.value = v;
          }}
        />
        <div class="ins-hint ins-hint-flat">
          A rank departs when it is further from the ranks' median than the threshold times their spread (1.4826 × MAD,
          at least the layer's usual spread) at that many consecutive recorded steps. Needs three ranks or more.
        </div>
      </div>
    </>
  );
}
