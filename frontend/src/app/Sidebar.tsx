// Left panel: run picker, view index, the active view's settings and the selected layer's details.
import { activeView, darkMode, layerInfoByName, runs, selectedLayer, selectedRun } from "../core/state";
import { formatShape } from "../lib/format";
import type { ViewDef } from "./registry";

// TensorBoard's run colour palette (webapp/util/colors.ts), assigned in run order.
const RUN_COLORS_LIGHT = ["#425066", "#12b5cb", "#e52592", "#f9ab00", "#9334e6", "#7cb342", "#e8710a"];
const RUN_COLORS_DARK = ["#8e98a3", "#12b5cb", "#e52592", "#f9ab00", "#9334e6", "#7cb342", "#e8710a"];

function RunList() {
  const list = runs.value.data ?? [];
  const current = selectedRun.value;
  const colors = darkMode.value ? RUN_COLORS_DARK : RUN_COLORS_LIGHT;
  return (
    <ul class="ins-runs" role="radiogroup" aria-label="Run" data-testid="run-list">
      {list.map((r, i) => (
        <li key={r.run}>
          <label class={"ins-run" + (r.run === current ? " selected" : "")} data-testid="run-item">
            <input
              type="radio"
              name="insight-run"
              checked={r.run === current}
              onChange={() => {
                selectedRun.value = r.run;
              }}
            />
            <span class="ins-run-dot" style={{ background: colors[i % colors.length] }} />
            <span class="ins-run-text">
              <div class="ins-run-name" data-testid="run-name">
                {r.run}
              </div>
              <div class="ins-run-meta">
                {r.numLayers} layers · last step {r.maxStep}
              </div>
            </span>
          </label>
        </li>
      ))}
    </ul>
  );
}

function LayerDetails() {
  const name = selectedLayer.value;
  if (name === null) return null;
  const info = layerInfoByName.value.get(name);
  return (
    <div class="ins-section" data-testid="layer-details">
      <div class="ins-section-title">Selected layer</div>
      <dl class="ins-kv">
        <dt>name</dt>
        <dd>{name}</dd>
        {info ? (
          <>
            <dt>type</dt>
            <dd>{info.moduleType}</dd>
            {info.shape ? (
              <>
                <dt>shape</dt>
                <dd>{formatShape(info.shape)}</dd>
              </>
            ) : null}
            {typeof info.numSteps === "number" ? (
              <>
                <dt>records</dt>
                <dd>{info.numSteps}</dd>
              </>
            ) : null}
            {typeof info.maxStep === "number" ? (
              <>
                <dt>last step</dt>
                <dd>{info.maxStep}</dd>
              </>
            ) : null}
          </>
        ) : null}
      </dl>
    </div>
  );
}

export function Sidebar(props: { views: ViewDef[]; active: ViewDef }) {
  const Settings = props.active.settings;
  return (
    <aside class="ins-sidebar">
      <div class="ins-section">
        <div class="ins-section-title">Runs</div>
        <RunList />
      </div>
      {props.views.length > 1 ? (
        <div class="ins-section">
          <div class="ins-section-title">Views</div>
          <ul class="ins-nav" role="tablist" aria-label="Views">
            {props.views.map((v) => (
              <li key={v.id} role="presentation">
                <button
                  type="button"
                  role="tab"
                  aria-selected={v.id === props.active.id}
                  class={"ins-nav-item" + (v.id === props.active.id ? " active" : "")}
                  data-testid={"view-" + v.id}
                  onClick={() => {
                    activeView.value = v.id;
                  }}
                >
                  {v.title}
                </button>
              </li>
            ))}
          </ul>
        </div>
      ) : null}
      {Settings ? <Settings /> : null}
      {props.active.id === "stats" || props.active.id === "grads" ? <LayerDetails /> : null}
    </aside>
  );
}
