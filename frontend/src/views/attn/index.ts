// The Attention view: every attention module's heads on the probe over training, a click on a patch or
// token shows where that query attends, and attention health (entropy, max logit) with its alerts.
import type { ViewDef } from "../../core/view";
import { AttentionView } from "./AttentionView";

export const attnView: ViewDef = {
  id: "attn",
  title: "Attention",
  component: AttentionView,
};
