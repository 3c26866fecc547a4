// The text-probe view's part of a deep link (keys `tokens.*`): probe, step and overlay.
import { numberParam as num, type ViewUrlState } from "../../lib/urlstate";
import { attnHead, attnLayer } from "./attention";
import { shownStep, tokenOverlay, tokenProbe, tokenStep } from "./state";

function apply(url: Record<string, string>): void {
  if (url["tokens.probe"]) tokenProbe.value = url["tokens.probe"];
  const step = num(url["tokens.step"], 0, Number.MAX_SAFE_INTEGER);
  if (step !== null) tokenStep.value = Math.floor(step);
  if (url["tokens.overlay"]) tokenOverlay.value = url["tokens.overlay"];
  if (url["tokens.layer"]) attnLayer.value = url["tokens.layer"];
  const head = num(url["tokens.head"], 0, 4096);
  if (head !== null) attnHead.value = Math.floor(head);
}

function state(): Record<string, string | null> {
  const step = shownStep.value;
  return {
    "tokens.probe": tokenProbe.value,
    "tokens.step": step === null ? null : String(step),
    "tokens.overlay": tokenOverlay.value,
    "tokens.layer": attnLayer.value,
    "tokens.head": attnHead.value ? String(attnHead.value) : null,
  };
}

export const tokensUrlState: ViewUrlState = { apply, state, stepKey: "tokens.step" };
