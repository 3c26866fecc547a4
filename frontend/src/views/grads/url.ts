// The gradient view's part of a deep link (keys `grad.*`).
import { numberParam as num, type ViewUrlState } from "../../lib/urlstate";
import {
  alertMeasure,
  DEFAULT_EXPLODE_EXP,
  DEFAULT_HEATMAP_FIELD,
  DEFAULT_VANISH_EXP,
  explodeExp,
  gradField,
  gradStep,
  isHeatmapField,
  isMeasure,
  shownGradStep,
  vanishExp,
} from "./state";

function apply(url: Record<string, string>): void {
  const step = num(url["grad.step"], 0, Number.MAX_SAFE_INTEGER);
  if (step !== null) gradStep.value = Math.floor(step);
  if (url["grad.field"] && isHeatmapField(url["grad.field"])) gradField.value = url["grad.field"];
  if (url["grad.measure"] && isMeasure(url["grad.measure"])) alertMeasure.value = url["grad.measure"];
  const vanish = num(url["grad.vanish"], -8, -1);
  if (vanish !== null) vanishExp.value = Math.round(vanish);
  const explode = num(url["grad.explode"], 1, 8);
  if (explode !== null) explodeExp.value = Math.round(explode);
}

function state(): Record<string, string | null> {
  const step = shownGradStep.value;
  return {
    "grad.step": step === null ? null : String(step),
    "grad.field": gradField.value === DEFAULT_HEATMAP_FIELD ? null : gradField.value,
    "grad.measure": alertMeasure.value === "gradNorm" ? null : alertMeasure.value,
    "grad.vanish": vanishExp.value === DEFAULT_VANISH_EXP ? null : String(vanishExp.value),
    "grad.explode": explodeExp.value === DEFAULT_EXPLODE_EXP ? null : String(explodeExp.value),
  };
}

export const gradUrlState: ViewUrlState = { apply, state, stepKey: "grad.step" };
