// Left-panel settings of the activation-statistics view: the heatmap's statistic, colormap and scaling.
import { colormap } from "../../core/state";
import { ColormapField, SelectField, Toggle } from "../../widgets/fields";
import { availableStats, isStatName, normalization, selectedStat, STAT_LABELS } from "./state";

/** Settings of the activation-statistics view: the heatmap's statistic, colormap and scaling. */
export function StatsSettings() {
  const stats = availableStats.value;
  return (
    <div class="ins-section">
      <div class="ins-section-title">Heatmap</div>
      <SelectField
        id="ins-stat"
        label="Statistic"
        testid="stat-select"
        value={selectedStat.value}
        options={stats.map((s) => ({ value: s, label: STAT_LABELS[s] ?? s }))}
        onChange={(v) => {
          if (isStatName(v)) selectedStat.value = v;
        }}
      />
      <ColormapField
        id="ins-cmap"
        testid="colormap-select"
        value={colormap.value}
        onChange={(c) => {
          colormap.value = c;
        }}
      />
      <Toggle
        testid="normalize-rows"
        checked={normalization.value === "row"}
        onChange={(checked) => {
          normalization.value = checked ? "row" : "global";
        }}
      >
        Scale each layer separately
      </Toggle>
      <div class="ins-hint">
        Layers can differ by orders of magnitude; turn this off to compare values across layers on one scale.
      </div>
    </div>
  );
}
