// The rank view's part of a deep link (keys `rank.*`).
import { numberParam as num, type ViewUrlState } from "../../lib/urlstate";
import { chosenFamily, DEFAULT_SUSTAIN, DEFAULT_THRESHOLD, isRankKind, rankKind, rankMeasure, rankStat, rankStatChoice, rankSustain, rankThreshold, shownFamily } from "./state";

function apply(url: Record<string, string>): void {
  if (url["rank.family"]) chosenFamily.value = url["rank.family"];
  if (url["rank.kind"] && isRankKind(url["rank.kind"])) rankKind.value = url["rank.kind"];
  if (url["rank.stat"]) rankStatChoice.value = url["rank.stat"];
  if (url["rank.measure"] === "relativeSpread" || url["rank.measure"] === "deviation") rankMeasure.value = url["rank.measure"];
  const threshold = num(url["rank.threshold"], 2, 64);
  if (threshold !== null) rankThreshold.value = Math.round(threshold);
  const sustain = num(url["rank.sustain"], 1, 10);
  if (sustain !== null) rankSustain.value = Math.round(sustain);
}

function state(): Record<string, string | null> {
  return {
    "rank.family": shownFamily.value,
    "rank.kind": rankKind.value === "activation" ? null : rankKind.value,
    "rank.stat": rankStat.value,
    "rank.measure": rankMeasure.value === "deviation" ? null : rankMeasure.value,
    "rank.threshold": rankThreshold.value === DEFAULT_THRESHOLD ? null : String(rankThreshold.value),
    "rank.sustain": rankSustain.value === DEFAULT_SUSTAIN ? null : String(rankSustain.value),
  };
}

export const rankUrlState: ViewUrlState = { apply, state };
