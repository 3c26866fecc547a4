// Left-panel settings of the overlay viewer: kind, probe, layer, methods, comparison run, and the
// display (colormap, opacity, threshold, normalisation, image size).
import { COLORMAP_NAMES, isColormapName } from "../colormaps";
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
} from "../cam_state";
import { runs, selectedRun } from "../state";

function Range(props: {
  id: string;
  label: string;
  testid: string;
  min: number;
  max: number;
  step: number;
  value: number;
  format: (v: number) => string;
  onInput: (v: number) => void;
}) {
  return (
    <div class="ins-field ins-range-field">
      <label for={props.id}>{props.label}</label>
      <input
        id={props.id}
        type="range"
        class="ins-range"
        data-testid={props.testid}
        min={props.min}
        max={props.max}
        step={props.step}
        value={props.value}
        onInput={(e) => props.onInput(Number((e.currentTarget as HTMLInputElement).value))}
      />
      <span class="ins-range-val">{props.format(props.value)}</span>
    </div>
  );
}

function MethodList() {
  const methods = availableMethods.value;
  const chosen = camMethods.value;
  if (!methods.length) return null;
  return (
    <div class="ins-methods" role="group" aria-label="Methods" data-testid="cam-methods">
      {methods.map((m) => {
        const on = chosen.includes(m);
        return (
          <label key={m} class="ins-toggle ins-method">
            <input
              type="checkbox"
              data-testid="cam-method"
              value={m}
              checked={on}
              disabled={on && chosen.length === 1}
              onChange={(e) => {
                const checked = (e.currentTarget as HTMLInputElement).checked;
                const cur = camMethods.peek();
                // Keep the order of the method list; at least one stays selected.
                const next = methods.filter((x) => (x === m ? checked : cur.includes(x)));
                if (next.length) camMethods.value = next;
              }}
            />
            {m}
          </label>
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
      <div class="ins-field">
        <label for="ins-cam-compare">Compare with</label>
        <select
          id="ins-cam-compare"
          class="ins-select"
          data-testid="cam-compare"
          value={b ?? ""}
          onChange={(e) => {
            const v = (e.currentTarget as HTMLSelectElement).value;
            compareRun.value = v === "" ? null : v;
          }}
        >
          <option value="">(no second run)</option>
          {others.map((r) => (
            <option key={r.run} value={r.run}>
              {r.run}
            </option>
          ))}
        </select>
      </div>
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
          <div class="ins-field">
            <label for="ins-cam-probe">Probe</label>
            <select
              id="ins-cam-probe"
              class="ins-select"
              data-testid="cam-probe"
              value={camProbe.value}
              onChange={(e) => {
                camProbe.value = (e.currentTarget as HTMLSelectElement).value;
              }}
            >
              {probes.map((p) => (
                <option key={p} value={p}>
                  {p}
                </option>
              ))}
            </select>
          </div>
        ) : null}
        {kind === "cam" && layers.length ? (
          <div class="ins-field">
            <label for="ins-cam-layer">Layer</label>
            <select
              id="ins-cam-layer"
              class="ins-select"
              data-testid="cam-layer"
              value={camLayer.value ?? ""}
              onChange={(e) => {
                camLayer.value = (e.currentTarget as HTMLSelectElement).value;
              }}
            >
              {layers.map((l) => (
                <option key={l.name} value={l.name}>
                  {l.name}
                  {l.auto ? " (auto)" : ""}
                </option>
              ))}
            </select>
          </div>
        ) : null}
        <div class="ins-subtitle">Methods</div>
        <MethodList />
        <div class="ins-hint ins-hint-flat">Pick several to see them side by side.</div>
        <CompareSelect />
      </div>
      ) : null}
      <div class="ins-section">
        <div class="ins-section-title">Display</div>
        <div class="ins-field">
          <label for="ins-cam-cmap">Colormap</label>
          <select
            id="ins-cam-cmap"
            class="ins-select"
            data-testid="cam-colormap"
            value={camColormap.value}
            onChange={(e) => {
              const v = (e.currentTarget as HTMLSelectElement).value;
              if (isColormapName(v)) camColormap.value = v;
            }}
          >
            {COLORMAP_NAMES.map((c) => (
              <option key={c} value={c}>
                {c}
              </option>
            ))}
          </select>
        </div>
        <Range
          id="ins-cam-opacity"
          label="Opacity"
          testid="cam-opacity"
          min={0}
          max={1}
          step={0.05}
          value={camOpacity.value}
          format={(v) => Math.round(v * 100) + "%"}
          onInput={(v) => {
            camOpacity.value = v;
          }}
        />
        <Range
          id="ins-cam-threshold"
          label="Threshold"
          testid="cam-threshold"
          min={0}
          max={0.95}
          step={0.05}
          value={camThreshold.value}
          format={(v) => v.toFixed(2)}
          onInput={(v) => {
            camThreshold.value = v;
          }}
        />
        <div class="ins-field">
          <label for="ins-cam-norm">Scale</label>
          <select
            id="ins-cam-norm"
            class="ins-select"
            data-testid="cam-norm"
            value={camNorm.value}
            onChange={(e) => {
              camNorm.value = (e.currentTarget as HTMLSelectElement).value === "shared" ? "shared" : "image";
            }}
          >
            <option value="image">per image (as stored)</option>
            <option value="shared">shared across the grid</option>
          </select>
        </div>
        <Range
          id="ins-cam-size"
          label="Image size"
          testid="cam-size"
          min={MIN_TILE_SIZE}
          max={MAX_TILE_SIZE}
          step={16}
          value={camTileSize.value}
          format={(v) => v + " px"}
          onInput={(v) => {
            camTileSize.value = v;
          }}
        />
      </div>
    </>
  );
}
