// Left-panel settings of the gradient view: the heatmap's statistic and colormap, and the alert
// thresholds (relative to the model's median gradient norm at each step).
import { COLORMAP_NAMES, isColormapName } from "../colormaps";
import { alertMeasure, explodeExp, gradField, HEATMAP_FIELDS, isMeasure, vanishExp } from "../grad_state";
import { colormap } from "../state";

function Exponent(props: { id: string; label: string; testid: string; min: number; max: number; value: number; onInput: (v: number) => void }) {
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
        step={1}
        value={props.value}
        onInput={(e) => props.onInput(Number((e.currentTarget as HTMLInputElement).value))}
      />
      <span class="ins-range-val">
        10<sup>{props.value}</sup>
      </span>
    </div>
  );
}

export function GradientSettings() {
  return (
    <>
      <div class="ins-section">
        <div class="ins-section-title">Heatmap</div>
        <div class="ins-field">
          <label for="ins-grad-field">Statistic</label>
          <select
            id="ins-grad-field"
            class="ins-select"
            data-testid="grad-field-select"
            value={gradField.value}
            onChange={(e) => {
              gradField.value = (e.currentTarget as HTMLSelectElement).value;
            }}
          >
            {HEATMAP_FIELDS.map((f) => (
              <option key={f.id} value={f.id}>
                {f.label}
              </option>
            ))}
          </select>
        </div>
        <div class="ins-field">
          <label for="ins-grad-cmap">Colormap</label>
          <select
            id="ins-grad-cmap"
            class="ins-select"
            value={colormap.value}
            onChange={(e) => {
              const v = (e.currentTarget as HTMLSelectElement).value;
              if (isColormapName(v)) colormap.value = v;
            }}
          >
            {COLORMAP_NAMES.map((c) => (
              <option key={c} value={c}>
                {c}
              </option>
            ))}
          </select>
        </div>
        <div class="ins-hint ins-hint-flat">Colours are on a log scale: gradients span many decades.</div>
      </div>
      <div class="ins-section">
        <div class="ins-section-title">Alerts</div>
        <div class="ins-field">
          <label for="ins-grad-measure">Compare</label>
          <select
            id="ins-grad-measure"
            class="ins-select"
            data-testid="grad-measure-select"
            value={alertMeasure.value}
            onChange={(e) => {
              const v = (e.currentTarget as HTMLSelectElement).value;
              if (isMeasure(v)) alertMeasure.value = v;
            }}
          >
            <option value="gradNorm">parameter gradient norm</option>
            <option value="actGradNorm">output gradient norm</option>
          </select>
        </div>
        <Exponent
          id="ins-grad-vanish"
          label="Vanishing"
          testid="grad-vanish"
          min={-8}
          max={-1}
          value={vanishExp.value}
          onInput={(v) => {
            vanishExp.value = v;
          }}
        />
        <Exponent
          id="ins-grad-explode"
          label="Exploding"
          testid="grad-explode"
          min={1}
          max={8}
          value={explodeExp.value}
          onInput={(v) => {
            explodeExp.value = v;
          }}
        />
        <div class="ins-hint ins-hint-flat">
          A layer is flagged when its norm is below (above) this multiple of the median over all layers at that step.
          NaN and Inf gradients are always flagged.
        </div>
      </div>
    </>
  );
}
