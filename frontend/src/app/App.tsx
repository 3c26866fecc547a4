import { activeView, runs, selectedRun } from "../core/state";
import { ErrorMessage } from "../widgets/ErrorMessage";
import { listedViews } from "./registry";
import { Sidebar } from "./Sidebar";

function EmptyState() {
  return (
    <div class="ins-main">
      <div class="ins-empty" data-testid="empty-state">
        <h2>No Insight data yet</h2>
        <p>
          No run in this logdir holds Insight data. Call <code>writer.watch(model)</code> on an{" "}
          <code>InsightWriter</code> before training, then reload TensorBoard:
        </p>
        <pre>
          {`from tb_plugin_insight import InsightWriter

writer = InsightWriter("runs/my_experiment")
writer.watch(model, every=10)   # record activation statistics every 10 steps
for step, batch in enumerate(loader):
    loss = model(batch)...
writer.close()`}
        </pre>
        <p class="ins-muted">Data written while TensorBoard runs appears on the next reload.</p>
      </div>
    </div>
  );
}

export function App() {
  const r = runs.value;
  // A deep-linked run is shown at once (its requests went out with /runs); the run list fills in
  // when /runs answers, which then confirms the run or picks another.
  if (!r.data && (r.error || selectedRun.value === null)) {
    if (r.error) {
      return (
        <div class="ins-main">
          <ErrorMessage title="Could not load the Insight runs" message={r.error} />
        </div>
      );
    }
    return (
      <div class="ins-main">
        <div class="ins-loading">Loading Insight data…</div>
      </div>
    );
  }
  if (r.data && r.data.length === 0) return <EmptyState />;
  const views = listedViews();
  const view = views.find((v) => v.id === activeView.value) ?? views[0];
  const View = view.component;
  return (
    <div class="ins-app">
      <Sidebar views={views} active={view} />
      <main class="ins-main" data-view={view.id}>
        {r.error ? <ErrorMessage title="Could not refresh the run list" message={r.error} /> : null}
        <View />
      </main>
    </div>
  );
}
