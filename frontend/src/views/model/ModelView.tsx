// The Model view, the index of the tab: the model table (one row per module, folding by depth), the
// dead/saturated unit alerts, and the layer panel of the selected layer.
import { selectedLayer, selectedRun } from "../../core/state";
import { LayerPanel } from "./LayerPanel";
import { ModelTableCard } from "./ModelTableCard";
import { recordedLayers } from "./state";
import { UnitAlertsCard } from "./UnitAlertsCard";

export function ModelView() {
  const run = selectedRun.value;
  const layer = selectedLayer.value;
  return (
    <>
      <ModelTableCard />
      <UnitAlertsCard />
      {run !== null && layer !== null && recordedLayers.value.has(layer) ? (
        <LayerPanel run={run} layer={layer} />
      ) : (
        <section class="ins-card" data-testid="layer-panel-empty">
          <div class="ins-muted">Click a watched module in the table (or an alert) to open its layer panel.</div>
        </section>
      )}
    </>
  );
}
