// The text-probe view: each probe sequence as its tokens, coloured by the chosen overlay (token
// saliency per method), with the model's prediction beside it, over training (step player). Token
// strings are the user's: they are rendered as text (escaped by preact), never as markup.
import { selectedRun } from "../../core/state";
import { Select } from "../../widgets/fields";
import { StepPlayer } from "../../widgets/StepPlayer";
import type { TokensResponse } from "./api";
import { ATTENTION_OVERLAY, attentionSource, attnHead, attnLayer, attnQuery, attnStep, canPick, queryOf, shownAttnLayer, tokenAttnLayers, tokenAttnMaps } from "./attention";
import { overlaySources, rowScale, tokenColor, type OverlaySource } from "./overlays";
import { probeInfo, probeSteps, shownStep, tokenOverlay, tokenProbe, tokenProbes, tokensAt, tokenStep } from "./state";

function TokensEmpty(props: { run: string }) {
  return (
    <div class="ins-empty" data-testid="tokens-empty">
      <h2>No text probe in this run</h2>
      <p>
        Run <b>{props.run}</b> has no token saliency. Give <code>watch</code> a fixed batch of token sequences:
      </p>
      <pre>
        {`batch = tokenizer(texts, padding=True, return_tensors="pt")
writer.watch(model, probe=(dict(batch), labels), tokenizer=tokenizer,
             token_saliency_every=100)`}
      </pre>
    </div>
  );
}

function fmtProb(p: number | null | undefined): string {
  return typeof p === "number" && Number.isFinite(p) ? `${(100 * p).toFixed(1)}%` : "";
}

function Sequence(props: { data: TokensResponse; row: number; overlay: OverlaySource | null }) {
  const { data, row, overlay } = props;
  const tokens = data.tokens[row] ?? [];
  const mask = data.mask[row] ?? [];
  const values = overlay?.values[row] ?? [];
  const scale = rowScale(values, mask);
  const attn = overlay?.id === ATTENTION_OVERLAY ? shownAttnLayer.value : null;
  const position = attn ? queryOf(attn, data, row) : data.positions ? data.positions[row] : null;
  const label = data.labelNames ? data.labelNames[row] : null;
  const predicted = data.predictedNames[row];
  const right = data.labels && data.predicted[row] === data.labels[row];
  return (
    <div class="ins-tok-row" data-testid="token-sequence">
      <div class="ins-tok-tokens">
        {tokens.map((t, i) => (
          <span
            key={i}
            class={"ins-tok" + (mask[i] ? "" : " ins-tok-pad") + (i === position ? " ins-tok-pos" : "") + (attn && canPick(attn, row, i) ? " ins-tok-pick" : "")}
            onClick={attn && canPick(attn, row, i) ? () => pickQuery(row, i) : undefined}
            style={{ background: mask[i] ? tokenColor(values[i], scale, overlay?.signed ?? true) : "transparent" }}
            title={`${t} (id ${data.ids[row]?.[i]})${Number.isFinite(values[i]) ? `: ${values[i].toPrecision(3)}` : ""}`}
            data-testid="token"
          >
            {t}
          </span>
        ))}
      </div>
      <div class="ins-tok-pred" data-testid="token-prediction">
        <span class="ins-muted">{data.task === "next_token" ? "next:" : "predicted:"}</span>{" "}
        <b class={data.labels ? (right ? "ins-tok-right" : "ins-tok-wrong") : ""}>{predicted}</b>{" "}
        <span class="ins-muted">{fmtProb(data.probability[row])}</span>
        {label !== null ? <span class="ins-muted"> · label: {label}</span> : null}
      </div>
    </div>
  );
}

function pickQuery(row: number, pos: number): void {
  const q = attnQuery.peek();
  attnQuery.value = q && q.row === row && q.pos === pos ? null : { row, pos };
}

/** Module and head pickers of the attention overlay, and whose attention is shown at which step. */
function AttentionPickers() {
  const layer = shownAttnLayer.value;
  if (!layer) return null;
  const layers = tokenAttnLayers.value.data?.layers ?? [];
  const head = Math.min(attnHead.value, layer.heads - 1);
  const who = layer.queryRule === "first" ? "the first token" : layer.queryRule === "mean" ? "the mean over queries" : layer.queryRule === "index" ? `query ${layer.queryIndex}` : "the last real token";
  const picks = layer.rows ? ` (click a token of the first ${layer.rows.numSamples} sequence(s) to see where it attends)` : "";
  return (
    <span class="ins-tok-attn">
      <Select
        testid="token-attn-layer"
        value={layer.layer}
        options={layers.map((l) => ({ value: l.layer, label: l.layer }))}
        onChange={(v) => {
          attnLayer.value = v;
        }}
      />
      <Select
        testid="token-attn-head"
        value={String(head)}
        options={Array.from({ length: layer.heads }, (_, h) => ({ value: String(h), label: `head ${h}` }))}
        onChange={(v) => {
          attnHead.value = Number(v);
        }}
      />
      <span class="ins-muted" data-testid="token-attn-note">
        attention of {who} (outlined) at step {attnStep.value ?? "–"}{picks}
      </span>
    </span>
  );
}

export function TokensView() {
  const run = selectedRun.value;
  const probes = tokenProbes.value;
  if (!run) return <div class="ins-empty">Choose a run.</div>;
  if (probes.error) return <div class="ins-error" role="alert">{probes.error}</div>;
  if (!probes.data) return <div class="ins-loading">Loading…</div>;
  const info = probeInfo.value;
  if (!info) return <TokensEmpty run={run} />;
  const steps = probeSteps.value;
  const step = shownStep.value;
  const loaded = tokensAt.value;
  const data = loaded.data;
  const sources = data ? [...overlaySources(data), ...attentionSource(data)] : [];
  const overlay = sources.find((s) => s.id === tokenOverlay.value) ?? sources[0] ?? null;
  return (
    <div class="ins-tokens" data-testid="tokens-view">
      <div class="ins-tok-toolbar">
        {tokenProbes.value.data && tokenProbes.value.data.probes.length > 1 ? (
          <Select
            testid="token-probe-select"
            value={info.probe}
            options={tokenProbes.value.data.probes.map((p) => ({ value: p.probe, label: p.probe }))}
            onChange={(v) => {
              tokenProbe.value = v;
            }}
          />
        ) : null}
        <Select
          testid="token-overlay-select"
          value={overlay?.id ?? ""}
          options={sources.map((s) => ({ value: s.id, label: s.label }))}
          onChange={(v) => {
            tokenOverlay.value = v;
          }}
        />
        {overlay?.id === ATTENTION_OVERLAY ? <AttentionPickers /> : null}
        <span class="ins-muted">
          {info.task === "next_token" ? "explains the next-token logit at the last real token (outlined)" : "explains the class logit"}
          {info.methods[0] ? ` · target: ${info.methods[0].target} · layer ${info.methods[0].embeddingLayer}` : ""}
        </span>
      </div>
      {steps.length ? (
        <StepPlayer
          class="ins-tok-stepbar"
          steps={steps}
          index={Math.max(0, step === null ? 0 : steps.indexOf(step))}
          onIndex={(i) => {
            tokenStep.value = probeSteps.peek()[i];
          }}
          ids={{ slider: "token-step-slider", label: "token-step-label" }}
          ariaLabel="Training step"
          arrows
        >
          {loaded.loading ? <span class="ins-loading">Loading…</span> : null}
        </StepPlayer>
      ) : null}
      {loaded.error ? <div class="ins-error" role="alert">{loaded.error}</div> : null}
      {overlay?.id === ATTENTION_OVERLAY && tokenAttnMaps.value.error ? (
        <div class="ins-error" role="alert">{tokenAttnMaps.value.error}</div>
      ) : null}
      {data ? (
        <div class={"ins-tok-list" + (loaded.loading ? " ins-stale" : "")}>
          {data.tokens.map((_, row) => (
            <Sequence key={row} data={data} row={row} overlay={overlay} />
          ))}
        </div>
      ) : null}
      <p class="ins-muted ins-tok-legend">
        {overlay?.id === ATTENTION_OVERLAY
          ? "Red: the share of the query's attention each token gets (each sequence scaled to its largest share; padding gets none)."
          : "Red: the token raises the explained logit; blue: lowers it (each sequence scaled to its largest |value|)."}
      </p>
    </div>
  );
}
