// The text-probe view: token saliency of the probe sequences over training, with the predictions.
import type { ViewDef } from "../../core/view";
import { startTokenAttentionLoaders } from "./attention";
import { startTokenLoaders, TOKENS_VIEW } from "./state";
import { TokensView } from "./TokensView";
import { tokensUrlState } from "./url";

export const tokensView: ViewDef = {
  id: TOKENS_VIEW,
  title: "Tokens",
  component: TokensView,
  start: () => {
    startTokenLoaders();
    startTokenAttentionLoaders();
  },
  url: tokensUrlState,
};
