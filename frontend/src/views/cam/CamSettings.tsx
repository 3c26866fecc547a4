// Left-panel settings of the overlay viewer: kind, probe, layer, methods, comparison run, and the
// display (colormap, opacity, threshold, normalisation, image size).
import { runs, selectedRun } from "../../core/state";
import { ColormapField, RangeField, SelectField, Toggle } from "../../widgets/fields";
import {
  availableKinds,
  availableLayers,
  availableMethods,
  availableProbes,
  camColormap,
  camKind,
  camLayer,
  camMethods,
  camNorm,
  camOpacity,
  camProbe,
  camThreshold,
  camTileSize,
  compareRun,
  KIND_LABELS,
  MAX_TILE_SIZE,
  MIN_TILE_SIZE,
  mapsB,
} from "./state";
import { layerLabel, methodLabel } from "./labels";

function MethodList() {
  const methods = availableMethods.value;
  const chosen = camMethods.value;
  if (!methods.length) return null;
  return (
    <div class="ins-methods" role="group" aria-label="Methods" data-testid="cam-methods">
      {methods.map((m) => {
        const on = chosen.includes(m);
        return (
          <Toggle
            key={m}
            class="ins-method"
            testid="cam-method"
            value={m}
            checked={on}
            disabled={on && chosen.length === 1}
            onChange={(checked) => {
              const cur = camMethods.peek();
              // Keep the order of the method list; at least one stays selected.
              const next = methods.filter((x) => (x === m ? checked : cur.includes(x)));
              if (next.length) camMethods.value = next;
            }}
          >
            {methodLabel(m)}
          </Toggle>
        );
      })}
    </div>
  );
}

function CompareSelect() {
  const list = runs.value.data ?? [];
  const run = selectedRun.value;
  const others = list.filter((r) => r.run !== run);
  if (!others.length) return null;
  const b = compareRun.value;
  const missing = b !== null && mapsB.value.data?.run === b && !mapsB.value.data.series.length;
  return (
    <>
      <SelectField
        id="ins-cam-compare"
        label="Compare with"
        testid="cam-compare"
        value={b ?? ""}
        options={[{ value: "", label: "(no second run)" }, ...others.map((r) => ({ value: r.run, label: r.run }))]}
        onChange={(v) => {
          compareRun.value = v === "" ? null : v;
        }}
      />
      {missing ? <div class="ins-hint ins-hint-flat">That run has no maps.</div> : null}
      {mapsB.value.error ? <div class="ins-hint ins-hint-flat">{mapsB.value.error}</div> : null}
    </>
  );
}

export function CamSettings() {
  const kinds = availableKinds.value;
  const probes = availableProbes.value;
  const layers = availableLayers.value;
  const kind = camKind.value;
  const hasMaps = availableMethods.value.length > 0;
  return (
    <>
      {hasMaps ? (
      <div class="ins-section" data-testid="cam-settings">
        <div class="ins-section-title">Maps</div>
        {kinds.length > 1 ? (
          <div class="ins-seg" role="radiogroup" aria-label="Kind of map">
            {kinds.map((k) => (
              <label key={k} class={"ins-seg-item" + (k === kind ? " on" : "")}>
                <input
                  type="radio"
                  name="insight-cam-kind"
                  data-testid={"cam-kind-" + k}
                  checked={k === kind}
                  onChange={() => {
                    camKind.value = k;
                  }}
                />
                {KIND_LABELS[k]}
              </label>
            ))}
          </div>
        ) : null}
        {probes.length > 1 ? (
          <SelectField
            id="ins-cam-probe"
            label="Probe"
            testid="cam-probe"
            value={camProbe.value}
            options={probes.map((p) => ({ value: p, label: p }))}
            onChange={(v) => {
              camProbe.value = v;
            }}
          />
        ) : null}
        {kind === "cam" && layers.length ? (
          <SelectField
            id="ins-cam-layer"
            label="Layer"
            testid="cam-layer"
            value={camLayer.value ?? ""}
            options={layers.map((l) => ({ value: l.name, label: l.auto ? layerLabel(l.name) + " (auto)" : layerLabel(l.name) }))}
            onChange={(v) => {
              camLayer.value = v;
            }}
          />
        ) : null}
        {kind === "cam" ? <LayerReason reason={layers.find((l) => l.name === (camLayer.value ?? ""))?.reason ?? ""} /> : null}
        <div class="ins-subtitle">Methods</div>
        <MethodList />
        <div class="ins-hint ins-hint-flat">Pick several to see them side by side.</div>
        <CompareSelect />
      </div>
      ) : null}
      <div class="ins-section">
        <div class="ins-section-title">Display</div>
        <ColormapField
          id="ins-cam-cmap"
          testid="cam-colormap"
          value={camColormap.value}
          onChange={(c) => {
            camColormap.value = c;
          }}
        />
        <RangeField
          id="ins-cam-opacity"
          label="Opacity"
          testid="cam-opacity"
          min={0}
          max={1}
          step={0.05}
          value={camOpacity.value}
          shown={Math.round(camOpacity.value * 100) + "%"}
          onInput={(v) => {
            camOpacity.value = v;
          }}
        />
        <RangeField
          id="ins-cam-threshold"
          label="Threshold"
          testid="cam-threshold"
          min={0}
          max={0.95}
          step={0.05}
          value={camThreshold.value}
          shown={camThreshold.value.toFixed(2)}
          onInput={(v) => {
            camThreshold.value = v;
          }}
        />
        <SelectField
          id="ins-cam-norm"
          label="Scale"
          testid="cam-norm"
          value={camNorm.value}
          options={[
            { value: "image", label: "per image (as stored)" },
            { value: "shared", label: "shared across the grid" },
          ]}
          onChange={(v) => {
            camNorm.value = v === "shared" ? "shared" : "image";
          }}
        />
        <RangeField
          id="ins-cam-size"
          label="Image size"
          testid="cam-size"
          min={MIN_TILE_SIZE}
          max={MAX_TILE_SIZE}
          step={16}
          value={camTileSize.value}
          shown={camTileSize.value + " px"}
          onInput={(v) => {
            camTileSize.value = v;
          }}
        />
      </div>
    </>
  );
}

/** Why the shown layer was explained (stored with the CAMs), beside the layer's name. */
function LayerReason({ reason }: { reason: string }) {
  if (!reason) return null;
  return (
    <div class="ins-hint ins-hint-flat" data-testid="cam-layer-reason">
      Why this layer: {reason}
    </div>
  );
}
