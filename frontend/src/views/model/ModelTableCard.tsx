// The model table: one row per module (folding by depth, filtered by name or type) with its output shape
// and parameter counts. A recorded (watched) row opens its layer panel.
import { useMemo } from "preact/hooks";
import { layers, selectedLayer, selectedRun } from "../../core/state";
import { ErrorMessage } from "../../widgets/ErrorMessage";
import type { ModelRow, ModelTotals } from "./api";
import { formatCount, formatKernel, formatMultAdds, formatOutput, hasChildren, isOpen, maxDepth, rowsFromLayers, totalsLines, visibleRows } from "./math";
import { modelTable, recordedLayers, tableData, treeDepth, treeFilter, treeOpen } from "./state";

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

/** torchinfo's totals block under the table (nothing for tables written before it existed). */
function TotalsBlock(props: { totals: ModelTotals | undefined }) {
  const lines = totalsLines(props.totals);
  if (!lines.length) return null;
  return (
    <dl class="ins-model-totals" data-testid="model-totals">
      {lines.map((l) => (
        <div key={l.label} class={l.rule ? "ins-model-totals-line ins-model-totals-rule" : "ins-model-totals-line"} data-testid="model-total">
          <dt>{l.label}</dt>
          <dd>{l.value}</dd>
        </div>
      ))}
    </dl>
  );
}

export function ModelTableCard() {
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
  // Tables written before torchinfo's columns existed have neither: no empty columns for them.
  const torchinfo = !!table && table.rows.some((r) => r.multAdds !== undefined || r.kernelSize !== undefined);
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
                  {torchinfo ? <th>Kernel shape</th> : null}
                  <th class="num">Params</th>
                  <th class="num">Trainable</th>
                  {torchinfo ? (
                    <th class="num" data-testid="model-multadds-head">
                      Mult-Adds
                    </th>
                  ) : null}
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
                        if (clickable) selectedLayer.value = row.name;
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
                      {torchinfo ? <td data-testid="model-kernel">{formatKernel(row.kernelSize)}</td> : null}
                      <td class="num">{formatCount(row.params)}</td>
                      <td class="num">{formatCount(row.trainableParams)}</td>
                      {torchinfo ? (
                        <td class="num" data-testid="model-multadds" title={row.multAdds ? `${formatCount(row.multAdds)} mult-adds (own: ${formatCount(row.ownMultAdds ?? NaN)})` : undefined}>
                          {formatMultAdds(row.multAdds)}
                        </td>
                      ) : null}
                      <td class="num">{row.depth}</td>
                      <td>{row.watched ? <span class="ins-badge">watched</span> : null}</td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
          <TotalsBlock totals={table?.totals} />
        </>
      ) : null}
    </section>
  );
}
