// The Model view, the index of the tab: the model table (one row per module, folding by depth), the
// dead/saturated unit alerts, and the layer panel of the selected layer.
import { useMemo } from "preact/hooks";
import type { ModelRow } from "../api";
import { formatValue } from "../format";
import {
  formatCount,
  formatOutput,
  hasChildren,
  isOpen,
  maxDepth,
  rowsFromLayers,
  visibleRows,
  type UnitAlert,
} from "../model_math";
import {
  modelTable,
  recordedLayers,
  tableData,
  treeDepth,
  treeFilter,
  treeOpen,
  unitAlerts,
  unitStats,
} from "../model_state";
import { layers, selectedLayer, selectedRun } from "../state";
import { ErrorMessage } from "./common";
import { LayerPanel } from "./LayerPanel";

function selectLayer(name: string): void {
  selectedLayer.value = name;
}

function toggle(row: ModelRow, open: boolean): void {
  const next = new Map(treeOpen.value);
  next.set(row.name, !open);
  treeOpen.value = next;
}

function TreeTools(props: { depth: number }) {
  const depths = Array.from({ length: Math.max(1, props.depth) }, (_, i) => i + 1);
  return (
    <div class="ins-model-tools">
      <input
        type="search"
        class="ins-input"
        placeholder="Filter by name or type"
        aria-label="Filter modules"
        data-testid="model-filter"
        value={treeFilter.value}
        onInput={(e) => {
          treeFilter.value = (e.currentTarget as HTMLInputElement).value;
        }}
      />
      <button
        type="button"
        class="ins-btn"
        data-testid="model-fold-all"
        onClick={() => {
          treeOpen.value = new Map();
          treeDepth.value = 1;
        }}
      >
        Fold all
      </button>
      <label>
        Expand to depth{" "}
        <select
          class="ins-select"
          data-testid="model-depth"
          value={String(treeDepth.value)}
          onChange={(e) => {
            treeOpen.value = new Map();
            treeDepth.value = Number((e.currentTarget as HTMLSelectElement).value);
          }}
        >
          {depths.map((d) => (
            <option key={d} value={String(d)} selected={d === treeDepth.value}>
              {d}
            </option>
          ))}
        </select>
      </label>
    </div>
  );
}

function ModelTableCard() {
  const state = modelTable.value;
  const loaded = tableData.value;
  const table = loaded && loaded.rows.length ? loaded : null;
  const recorded = recordedLayers.value;
  const selected = selectedLayer.value;
  const missing = loaded !== null && loaded.rows.length === 0;
  const layerList = layers.value.data;
  // Without a model table, the recorded layers (flat, no parameter counts) still open their panels.
  const fallback = useMemo(
    () => (missing && layerList && layerList.run === selectedRun.value ? rowsFromLayers(layerList.layers) : null),
    [missing, layerList],
  );
  const rows = table?.rows ?? fallback;
  const options = { depth: treeDepth.value, open: treeOpen.value, filter: treeFilter.value };
  const shown = useMemo(() => (rows ? visibleRows(rows, options) : []), [rows, options.depth, options.open, options.filter]);
  const data = rows ? { rows } : null;
  return (
    <section class="ins-card" data-testid="model-table-card">
      <div class="ins-card-head">
        <h2 class="ins-card-title">Model</h2>
        {table ? (
          <span class="ins-card-sub">
            {`${table.modelType} · ${formatCount(table.params ?? NaN)} parameters (${formatCount(table.trainableParams ?? NaN)} trainable) · shapes from step ${table.step}`}
          </span>
        ) : null}
        <span class="ins-spacer" />
        {state.loading ? <span class="ins-loading">Loading…</span> : null}
      </div>
      {state.error ? <ErrorMessage title="Could not load the model table" message={state.error} /> : null}
      {missing ? (
        <div class="ins-muted" data-testid="model-table-missing">
          This run has no model table (watch(model) records one at its first recorded step): its recorded layers are listed instead.
        </div>
      ) : null}
      {data ? (
        <>
          <TreeTools depth={maxDepth(data.rows)} />
          <div class="ins-table-wrap">
            <table class="ins-table" data-testid="model-table" data-rows={shown.length} data-run={selectedRun.value ?? ""}>
              <thead>
                <tr>
                  <th>Module</th>
                  <th>Type</th>
                  <th>Output shape</th>
                  <th class="num">Params</th>
                  <th class="num">Trainable</th>
                  <th class="num">Depth</th>
                  <th>Watched</th>
                </tr>
              </thead>
              <tbody>
                {shown.map((i) => {
                  const row = data.rows[i];
                  const clickable = recorded.has(row.name);
                  const parent = hasChildren(data.rows, i);
                  const open = isOpen(row, options) || treeFilter.value.trim() !== "";
                  const cls = [clickable ? "watched" : "unwatched", row.name === selected && clickable ? "selected" : ""].join(" ");
                  return (
                    <tr
                      key={row.name}
                      class={cls}
                      data-testid="model-row"
                      data-name={row.name}
                      title={clickable ? "Open this layer" : "Not recorded: pass its name in watch(model, layers=[...]) to record it"}
                      onClick={() => {
                        if (clickable) selectLayer(row.name);
                      }}
                    >
                      <td>
                        <span class="ins-tree-name" style={{ paddingLeft: row.depth * 14 + "px" }}>
                          {parent ? (
                            <button
                              type="button"
                              class="ins-fold"
                              data-testid="model-fold"
                              aria-label={open ? "Fold" : "Unfold"}
                              aria-expanded={open}
                              onClick={(e) => {
                                e.stopPropagation();
                                toggle(row, open);
                              }}
                            >
                              {open ? "▼" : "▶"}
                            </button>
                          ) : (
                            <span class="ins-fold-spacer" />
                          )}
                          <span data-testid="model-row-name">{row.name || "(model)"}</span>
                        </span>
                      </td>
                      <td>{row.type}</td>
                      <td>{formatOutput(row.output) + (row.calls > 1 ? ` ×${row.calls}` : "")}</td>
                      <td class="num">{formatCount(row.params)}</td>
                      <td class="num">{formatCount(row.trainableParams)}</td>
                      <td class="num">{row.depth}</td>
                      <td>{row.watched ? <span class="ins-badge">watched</span> : null}</td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        </>
      ) : null}
    </section>
  );
}

function Sparkline(props: { series: (number | null)[] }) {
  const w = 80;
  const h = 18;
  const n = props.series.length;
  const points = props.series
    .map((v, j) => (v === null ? null : `${n > 1 ? (j / (n - 1)) * w : w / 2},${h - v * h}`))
    .filter((p): p is string => p !== null)
    .join(" ");
  return (
    <svg class="ins-spark" width={w} height={h} viewBox={`0 0 ${w} ${h}`} aria-hidden="true">
      <polyline points={points} fill="none" stroke="currentColor" stroke-width="1.5" />
    </svg>
  );
}

const UNIT_TEXT: Record<UnitAlert["kind"], string> = { dead: "Dead channels", saturated: "Saturated channels" };

function UnitAlertsCard() {
  const state = unitStats.value;
  const list = unitAlerts.value;
  return (
    <section class="ins-card" data-testid="unit-alerts" data-count={list.length}>
      <div class="ins-card-head">
        <h2 class="ins-card-title">Dead and saturated units</h2>
        <span class="ins-card-sub">measured on the recorded training batch of each recorded step</span>
      </div>
      {state.error ? <ErrorMessage title="Could not load the unit statistics" message={state.error} /> : null}
      {state.data && list.length === 0 ? (
        <div class="ins-muted" data-testid="unit-alerts-none">
          No dead or saturated channels at any recorded step.
        </div>
      ) : null}
      {list.length ? (
        <ul class="ins-alerts">
          {list.map((a) => (
            <li key={a.kind + a.layer} class={"ins-alert " + a.kind} data-testid="unit-alert" data-kind={a.kind} data-layer={a.layer}>
              <span class="ins-alert-kind">{UNIT_TEXT[a.kind]}</span>
              <button type="button" class="ins-link" data-testid="unit-alert-layer" onClick={() => selectLayer(a.layer)}>
                {a.layer}
              </button>
              <span class="ins-alert-when">
                since step <b>{a.firstStep}</b>
              </span>
              <span class="ins-alert-detail ins-muted">{`now ${formatValue(a.last === null ? null : Math.round(a.last * 1000) / 10)}% · max ${formatValue(Math.round(a.max * 1000) / 10)}%`}</span>
              <Sparkline series={a.series} />
            </li>
          ))}
        </ul>
      ) : null}
    </section>
  );
}

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
