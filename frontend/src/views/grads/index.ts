// The gradient view: alerts, the gradient flow at a step, a gradient heatmap and the selected layer.
import type { ViewDef } from "../../core/view";
import { GradientSettings } from "./GradientSettings";
import { GradientView } from "./GradientView";
import { GRAD_VIEW, startGradLoaders } from "./state";
import { gradUrlState } from "./url";

export const gradsView: ViewDef = {
  id: GRAD_VIEW,
  title: "Gradients",
  component: GradientView,
  settings: GradientSettings,
  start: startGradLoaders,
  url: gradUrlState,
};
