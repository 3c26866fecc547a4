// The "Attention" view: per attention module (rows) and head (columns), where the probe's chosen query
// attends at the step of the step player; a click on a patch or token shows where that query attends
// instead. Below: attention health over steps (entropy, max logit) and its alerts.
import { useEffect, useState } from "preact/hooks";
import { selectedRun } from "../../core/state";
import { ErrorMessage } from "../../widgets/ErrorMessage";
import { StepPlayer } from "../../widgets/StepPlayer";
import type { AttentionLayer, AttentionStatsResponse, Probs } from "./api";
import { decodeCodes, fetchAttentionLayers, fetchAttentionMaps, fetchAttentionStats, vectorAt } from "./api";

/** One module's decoded attention at a step. */
interface StepMaps {
  maps: Probs;
  rows: Probs | null;
}
import { fetchProbe, probeImageUrl } from "../../core/api";
import type { ProbeUnderlay } from "./AttentionCell";
import { AttentionCell } from "./AttentionCell";
import { AlertsList, HealthCharts } from "./HealthCharts";
import { cellLayout, queryRow, tokenName } from "./math";

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function useAsync<T>(make: (signal: AbortSignal) => Promise<T> | null, deps: unknown[]): { data: T | null; error: string | null } {
  const [state, setState] = useState<{ data: T | null; error: string | null }>({ data: null, error: null });
  useEffect(() => {
    const ctrl = new AbortController();
    const p = make(ctrl.signal);
    if (p === null) return;
    setState((s) => ({ data: s.data, error: null }));
    p.then(
      (data) => !ctrl.signal.aborted && setState({ data, error: null }),
      (e) => !ctrl.signal.aborted && setState({ data: null, error: errorText(e) }),
    );
    return () => ctrl.abort();
  }, deps);
  return state;
}

const RULE_TEXT: Record<string, string> = {
  first: "the class token",
  last: "the last position",
  last_token: "each sequence's last real token",
  mean: "the mean over queries",
  index: "query",
};

function Grid(props: {
  layers: AttentionLayer[];
  maps: StepMaps[];
  sample: number;
  query: number | null;
  onQuery: (q: number | null) => void;
  underlay: ProbeUnderlay | null;
}) {
  return (
    <table class="ins-attn-grid" data-testid="attn-grid">
      <thead>
        <tr>
          <th />
          {Array.from({ length: Math.max(...props.layers.map((l) => l.heads)) }, (_, h) => (
            <th key={h} class="ins-attn-head" data-testid="attn-head">
              head {h}
            </th>
          ))}
        </tr>
      </thead>
      <tbody>
        {props.layers.map((layer, l) => {
          const stored = props.maps[l];
          const layout = cellLayout(layer.numKeys, layer.gridSide, layer.classTokens);
          const row = props.query !== null && layer.rows ? queryRow(layer.rows.queryBlocks, props.query) : null;
          const useRows = row !== null && stored.rows !== null && props.sample < (layer.rows?.numSamples ?? 0);
          return (
            <tr key={layer.layer}>
              <th class="ins-attn-layer-name" title={layer.moduleType}>
                {layer.layer}
              </th>
              {Array.from({ length: layer.heads }, (_, h) => {
                const weights =
                  useRows && stored.rows && row !== null ? vectorAt(stored.rows, [props.sample, h, row]) : vectorAt(stored.maps, [props.sample, h]);
                return (
                  <td key={h}>
                    <AttentionCell
                      weights={weights}
                      layout={layout}
                      underlay={props.underlay}
                      query={useRows ? props.query : null}
                      onPick={(k) => props.onQuery(k)}
                      testid={`attn-cell-${l}-${h}`}
                      title={`${layer.layer}, head ${h}`}
                    />
                  </td>
                );
              })}
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

function QueryNote(props: { layer: AttentionLayer; query: number | null; sample: number; onClear: () => void }) {
  const { layer, query } = props;
  const layout = cellLayout(layer.numKeys, layer.gridSide, layer.classTokens);
  if (query === null) {
    const who = layer.queryRule === "index" ? `query ${layer.queryIndex}` : RULE_TEXT[layer.queryRule] ?? layer.queryRule;
    return <span data-testid="attn-query">Attention of {who}; click a patch or token to see where it attends.</span>;
  }
  const samples = layer.rows?.numSamples ?? 0;
  return (
    <span data-testid="attn-query">
      Attention of {tokenName(layout, query)}
      {props.sample >= samples ? ` (per-query rows are stored for the first ${samples} probe sample(s) only)` : ""}{" "}
      <button type="button" data-testid="attn-query-clear" onClick={props.onClear}>
        Clear
      </button>
    </span>
  );
}

function Health(props: { run: string }) {
  const [entropyMin, setEntropyMin] = useState(0.1);
  const [growth, setGrowth] = useState(10);
  const stats = useAsync<AttentionStatsResponse>((s) => fetchAttentionStats(props.run, entropyMin, growth, s), [props.run, entropyMin, growth]);
  const number = (value: number, set: (v: number) => void, testid: string, max: number) => (
    <input
      type="number"
      step="any"
      min="0"
      max={String(max)}
      value={value}
      data-testid={testid}
      onChange={(e) => {
        const v = Number((e.currentTarget as HTMLInputElement).value);
        if (Number.isFinite(v) && v > 0 && v <= max) set(v);
      }}
    />
  );
  return (
    <div class="ins-attn-health-card">
      <h3>Attention health</h3>
      <div class="ins-attn-thresholds">
        <label>
          Entropy below {number(entropyMin, setEntropyMin, "attn-entropy-min", 1)}
        </label>
        <label>
          Max logit growth × {number(growth, setGrowth, "attn-logit-growth", 1e6)}
        </label>
      </div>
      {stats.error ? <ErrorMessage title="Could not load attention health" message={stats.error} /> : null}
      {stats.data ? (
        <>
          <AlertsList alerts={stats.data.alerts} />
          <HealthCharts stats={stats.data} />
        </>
      ) : null}
    </div>
  );
}

/** The probe images of the run, loaded as one sprite (null until loaded, or when there are none). */
function useProbeSprite(run: string, text: boolean): { sprite: HTMLImageElement; width: number; height: number } | null {
  const [found, setFound] = useState<{ sprite: HTMLImageElement; width: number; height: number } | null>(null);
  useEffect(() => {
    const ctrl = new AbortController();
    if (text) return () => ctrl.abort(); // a text probe has tokens, no images
    fetchProbe(run, undefined, ctrl.signal).then(
      (probe) => {
        const img = new Image();
        img.onload = () => !ctrl.signal.aborted && setFound({ sprite: img, width: probe.width, height: probe.height });
        img.src = probeImageUrl(run);
      },
      () => undefined, // no probe images stored: attention is drawn alone
    );
    return () => ctrl.abort();
  }, [run, text]);
  return found;
}

function Panel(props: { run: string; layers: AttentionLayer[]; text: boolean }) {
  const steps = props.layers[0].steps;
  const [index, setIndex] = useState(Math.max(0, steps.length - 1));
  const [playing, setPlaying] = useState(false);
  const [sample, setSample] = useState(0);
  const [query, setQuery] = useState<number | null>(null);
  const step = steps[Math.min(index, steps.length - 1)];
  const maps = useAsync<StepMaps[]>(
    (s) =>
      step === undefined
        ? null
        : Promise.all(
            props.layers.map((l) =>
              fetchAttentionMaps(props.run, l.layer, step, s).then((b) => ({
                maps: decodeCodes(b.maps),
                rows: b.rows ? decodeCodes(b.rows) : null,
              })),
            ),
          ),
    [props.run, step],
  );
  const images = props.layers[0].numImages;
  const probe = useProbeSprite(props.run, props.text);
  const [onImage, setOnImage] = useState(true);
  const underlay = probe && onImage ? { ...probe, sample } : null;
  return (
    <div>
      <StepPlayer
        class="ins-cam-stepbar"
        steps={steps}
        index={Math.min(index, steps.length - 1)}
        onIndex={setIndex}
        ids={{ slider: "attn-step-slider", label: "attn-step-label", play: "attn-play" }}
        ariaLabel="Training step"
        play={{ playing, onPlaying: setPlaying, fps: 2 }}
      />
      <div class="ins-attn-controls">
        <label>
          Probe sample{" "}
          <select data-testid="attn-sample" value={String(sample)} onChange={(e) => setSample(Number((e.currentTarget as HTMLSelectElement).value))}>
            {Array.from({ length: images }, (_, i) => (
              <option key={i} value={String(i)}>
                {i}
              </option>
            ))}
          </select>
        </label>
        {probe ? (
          <label>
            <input
              type="checkbox"
              data-testid="attn-on-image"
              checked={onImage}
              onChange={(e) => setOnImage((e.currentTarget as HTMLInputElement).checked)}
            />{" "}
            On the image
          </label>
        ) : null}{" "}
        <QueryNote layer={props.layers[0]} query={query} sample={sample} onClear={() => setQuery(null)} />
      </div>
      {maps.error ? <ErrorMessage title="Could not load the attention maps" message={maps.error} /> : null}
      {maps.data && maps.data.length === props.layers.length ? (
        <Grid layers={props.layers} maps={maps.data} sample={sample} query={query} onQuery={setQuery} underlay={underlay} />
      ) : (
        <div class="ins-loading">Loading attention…</div>
      )}
      <Health run={props.run} />
    </div>
  );
}

export function AttentionView() {
  const run = selectedRun.value;
  const listed = useAsync((s) => (run === null ? null : fetchAttentionLayers(run, s)), [run]);
  let body;
  if (run === null) body = <div class="ins-muted">Select a run.</div>;
  else if (listed.error) body = <ErrorMessage title="Could not load the run's attention" message={listed.error} />;
  else if (!listed.data) body = <div class="ins-loading">Loading attention…</div>;
  else if (!listed.data.layers.length || !listed.data.layers[0].steps.length)
    body = (
      <div class="ins-empty" data-testid="attn-empty">
        <h2>No attention in this run</h2>
        <p>
          Give <code>watch</code> a probe batch: for a model that computes attention (nn.MultiheadAttention,
          F.scaled_dot_product_attention, HuggingFace eager or SDPA), Insight records every head's attention on it.
        </p>
        <pre>{`writer.watch(model, probe=(images, labels), attention_every=100)`}</pre>
      </div>
    );
  else body = <Panel key={run} run={run} layers={listed.data.layers} text={!!listed.data.text} />;
  return (
    <section class="ins-card ins-attn" data-testid="attn-card">
      <div class="ins-card-head">
        <h2 class="ins-card-title">Attention</h2>
        {run !== null ? <span class="ins-card-sub">{run}</span> : null}
      </div>
      {body}
    </section>
  );
}
