// Left-panel settings of the Feature maps view: the layer shown.
import { selectedRun } from "../../core/state";
import { SelectField } from "../../widgets/fields";
import { layerNames, shownLayer, useRunLayers } from "./run_layers";
import { fmLayer } from "./state";

export function FeatureMapsSettings() {
  const run = selectedRun.value;
  const { data } = useRunLayers(run);
  if (!data) return null;
  const names = layerNames(data);
  if (!names.length) return null;
  const current = shownLayer(data);
  return (
    <div class="ins-section" data-testid="fmap-settings">
      <div class="ins-section-title">Feature maps</div>
      <SelectField
        id="ins-fm-layer"
        label="Layer"
        testid="fmap-layer"
        value={current ?? ""}
        options={names.map((l) => ({ value: l.name, label: `${l.name} (${l.note})` }))}
        onChange={(v) => {
          fmLayer.value = v;
        }}
      />
      <div class="ins-hint ins-hint-flat">Colours, scale and channels are set above the grid.</div>
    </div>
  );
}
