// Left-panel settings of the gradient view: the heatmap's statistic and colormap, and the alert
// thresholds (relative to the model's median gradient norm at each step).
import { colormap } from "../../core/state";
import { ColormapField, RangeField, SelectField } from "../../widgets/fields";
import { alertMeasure, explodeExp, gradField, HEATMAP_FIELDS, isMeasure, vanishExp } from "./state";

function Exponent(props: { id: string; label: string; testid: string; min: number; max: number; value: number; onInput: (v: number) => void }) {
  return (
    <RangeField
      {...props}
      step={1}
      shown={
        <>
          10<sup>{props.value}</sup>
        </>
      }
    />
  );
}

export function GradientSettings() {
  return (
    <>
      <div class="ins-section">
        <div class="ins-section-title">Heatmap</div>
        <SelectField
          id="ins-grad-field"
          label="Statistic"
          testid="grad-field-select"
          value={gradField.value}
          options={HEATMAP_FIELDS.map((f) => ({ value: f.id, label: f.label }))}
          onChange={(v) => {
            gradField.value = v;
          }}
        />
        <ColormapField
          id="ins-grad-cmap"
          value={colormap.value}
          onChange={(c) => {
            colormap.value = c;
          }}
        />
        <div class="ins-hint ins-hint-flat">Colours are on a log scale: gradients span many decades.</div>
      </div>
      <div class="ins-section">
        <div class="ins-section-title">Alerts</div>
        <SelectField
          id="ins-grad-measure"
          label="Compare"
          testid="grad-measure-select"
          value={alertMeasure.value}
          options={[
            { value: "gradNorm", label: "parameter gradient norm" },
            { value: "actGradNorm", label: "output gradient norm" },
          ]}
          onChange={(v) => {
            if (isMeasure(v)) alertMeasure.value = v;
          }}
        />
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
