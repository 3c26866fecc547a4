// The text-probe view: each probe sequence as its tokens, coloured by the chosen overlay (token
// saliency per method), with the model's prediction beside it, over training (step player). Token
// strings are the user's: they are rendered as text (escaped by preact), never as markup.
import { selectedRun } from "../../core/state";
import { Select } from "../../widgets/fields";
import { StepPlayer } from "../../widgets/StepPlayer";
import type { TokensResponse } from "./api";
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
  const position = data.positions ? data.positions[row] : null;
  const label = data.labelNames ? data.labelNames[row] : null;
  const predicted = data.predictedNames[row];
  const right = data.labels && data.predicted[row] === data.labels[row];
  return (
    <div class="ins-tok-row" data-testid="token-sequence">
      <div class="ins-tok-tokens">
        {tokens.map((t, i) => (
          <span
            key={i}
            class={"ins-tok" + (mask[i] ? "" : " ins-tok-pad") + (i === position ? " ins-tok-pos" : "")}
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
  const sources = data ? overlaySources(data) : [];
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
      {data ? (
        <div class={"ins-tok-list" + (loaded.loading ? " ins-stale" : "")}>
          {data.tokens.map((_, row) => (
            <Sequence key={row} data={data} row={row} overlay={overlay} />
          ))}
        </div>
      ) : null}
      <p class="ins-muted ins-tok-legend">Red: the token raises the explained logit; blue: lowers it (each sequence scaled to its largest |value|).</p>
    </div>
  );
}
