// What a view of the tab is: each folder under views/ exports one ViewDef (its index.ts), and
// app/registry.ts lists them. Nothing else needs an edit to add a view.
import type { ComponentType } from "preact";
import type { ViewUrlState } from "../lib/urlstate";

export interface ViewDef {
  /** The id in the deep link (`view=<id>`) and in `activeView`. */
  id: string;
  /** Its entry in the left panel's view index. */
  title: string;
  /** The main area while the view is active. */
  component: ComponentType;
  /** Settings shown in the left panel while the view is active. */
  settings?: ComponentType;
  /** Starts the view's loaders (once, at start-up; they fetch only while the view needs data). */
  start?: () => void;
  /** The view's keys of the deep link. */
  url?: ViewUrlState;
  /** Whether the view is listed now (e.g. only when the logdir has data it shows); default: always. */
  available?: () => boolean;
}
