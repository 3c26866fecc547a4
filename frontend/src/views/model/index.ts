// The Model view, the tab's index: the model table, the unit alerts and the selected layer's panel.
import type { ViewDef } from "../../core/view";
import { ModelView } from "./ModelView";
import { MODEL_VIEW, startModelLoaders } from "./state";

export const modelView: ViewDef = { id: MODEL_VIEW, title: "Model", component: ModelView, start: startModelLoaders };
