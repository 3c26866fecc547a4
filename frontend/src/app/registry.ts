// The tab's views, in the order of the left panel's index. The left panel lists them and shows the
// active view's settings; the main area shows the active view. The Model view (the model table and
// each layer's panel) is the index and the default. A view is one folder under views/ (its routes,
// state, components and settings) whose index.ts exports its ViewDef, plus one entry here.
import type { ViewDef } from "../core/view";
import { attnView } from "../views/attn";
import { camView } from "../views/cam";
import { fmapsView } from "../views/fmaps";
import { gradsView } from "../views/grads";
import { modelView } from "../views/model";
import { ranksView } from "../views/ranks";
import { statsView } from "../views/stats";
import { tokensView } from "../views/tokens";

export type { ViewDef };

export const VIEWS: ViewDef[] = [modelView, statsView, gradsView, camView, fmapsView, tokensView, attnView, ranksView];

/** The views listed now (a view may list itself only when there is data for it). */
export function listedViews(): ViewDef[] {
  return VIEWS.filter((v) => v.available?.() ?? true);
}

export function isViewId(id: string): boolean {
  return VIEWS.some((v) => v.id === id);
}

export function viewById(id: string): ViewDef | undefined {
  return VIEWS.find((v) => v.id === id);
}
