// The step player: the one control every view uses to move through recorded steps. A slider over the
// indices of the recorded steps, the step shown and its place among them, and, as the view asks,
// ‹ › buttons, play/pause (looping at the end) and a speed select. The view owns the step: the player
// reports the chosen index through onIndex, and (with `play`) the playing flag through onPlaying.
import type { ComponentChildren } from "preact";
import { useEffect, useRef } from "preact/hooks";
import { Range } from "./fields";

/** Speeds offered by the speed select, in frames (steps) per second. */
export const FPS_CHOICES: readonly number[] = [1, 2, 4, 8, 15];
/** Ticks play waits for a frame that is not drawn yet before it moves on anyway. */
const MAX_WAIT_TICKS = 8;

/** Test ids of the player's parts; a part without one is left without. */
export interface StepPlayerIds {
  slider: string;
  label: string;
  play?: string;
  fps?: string;
  prev?: string;
  next?: string;
}

export interface Playback {
  playing: boolean;
  onPlaying: (playing: boolean) => void;
  /** Steps per second while playing. */
  fps: number;
  /** Shows the speed select when given. */
  onFps?: (fps: number) => void;
  /** Whether the shown step is drawn: play waits for it (a few ticks at most) before the next. */
  ready?: () => boolean;
  /** Tooltip of the play button while paused. */
  title?: string;
}

export interface StepPlayerProps {
  steps: readonly number[];
  /** Index of the shown step in `steps`. */
  index: number;
  onIndex: (index: number) => void;
  ids: StepPlayerIds;
  /** Accessible name of the slider. */
  ariaLabel: string;
  /** Classes of the bar. */
  class: string;
  /** ‹ › buttons around the slider. */
  arrows?: boolean;
  /** "i / n" after the step (default true). */
  count?: boolean;
  /** A play button (and a speed select with `play.onFps`). */
  play?: Playback;
  /** Shown at the end of the bar (a loading note, a summary of the step). */
  children?: ComponentChildren;
}

/** Advance one step per tick while playing; the interval reads the latest props through `latest`. */
function usePlayLoop(latest: { current: StepPlayerProps }, play: Playback | undefined): void {
  const playing = play?.playing ?? false;
  const fps = play?.fps ?? 1;
  useEffect(() => {
    if (!playing) return;
    let waited = 0;
    const timer = setInterval(() => {
      const { steps, index, onIndex, play: p } = latest.current;
      if (steps.length < 2) {
        p?.onPlaying(false);
        return;
      }
      if (p?.ready && !p.ready() && waited < MAX_WAIT_TICKS) {
        waited++;
        return;
      }
      waited = 0;
      onIndex((index + 1) % steps.length);
    }, 1000 / fps);
    return () => clearInterval(timer);
  }, [playing, fps]);
}

/**
 * Slider input: the first input of an animation frame is shown at once; later ones until the next
 * frame are coalesced into one update per frame (only the last position is shown).
 */
function useCoalescedInput(latest: { current: StepPlayerProps }): (index: number) => void {
  const pending = useRef<number | null>(null);
  const raf = useRef(0);
  useEffect(() => () => cancelAnimationFrame(raf.current), []);
  const show = (i: number) => {
    if (i >= 0 && i < latest.current.steps.length) latest.current.onIndex(i);
  };
  return (i: number) => {
    if (raf.current) {
      pending.current = i;
      return;
    }
    show(i);
    raf.current = requestAnimationFrame(() => {
      raf.current = 0;
      const next = pending.current;
      pending.current = null;
      if (next !== null) show(next);
    });
  };
}

function PlayButton(props: { play: Playback; id?: string; disabled: boolean }) {
  const { play } = props;
  return (
    <button
      type="button"
      class="ins-btn ins-play"
      data-testid={props.id}
      aria-pressed={play.playing}
      disabled={props.disabled}
      title={play.title === undefined ? undefined : play.playing ? "Pause" : play.title}
      onClick={() => play.onPlaying(!play.playing)}
    >
      {play.playing ? "❚❚ Pause" : "▶ Play"}
    </button>
  );
}

function FpsSelect(props: { fps: number; onFps: (fps: number) => void; id?: string }) {
  return (
    <select
      class="ins-select ins-fps"
      aria-label="Playback speed"
      data-testid={props.id}
      value={String(props.fps)}
      onChange={(e) => props.onFps(Number((e.currentTarget as HTMLSelectElement).value) || props.fps)}
    >
      {FPS_CHOICES.map((f) => (
        <option key={f} value={String(f)}>
          {f} fps
        </option>
      ))}
    </select>
  );
}

export function StepPlayer(props: StepPlayerProps) {
  const { steps, index, ids, play } = props;
  const latest = useRef(props);
  latest.current = props;
  usePlayLoop(latest, play);
  const onInput = useCoalescedInput(latest);
  const go = (i: number) => {
    if (i >= 0 && i < steps.length) props.onIndex(i);
  };
  return (
    <div class={props.class}>
      {play ? <PlayButton play={play} id={ids.play} disabled={steps.length < 2} /> : null}
      {props.arrows ? (
        <button type="button" class="ins-btn" data-testid={ids.prev} disabled={index <= 0} onClick={() => go(index - 1)}>
          ‹
        </button>
      ) : null}
      <Range
        testid={ids.slider}
        class="ins-range ins-cam-slider"
        min={0}
        max={Math.max(0, steps.length - 1)}
        step={1}
        value={index}
        ariaLabel={props.ariaLabel}
        ariaValueText={`step ${steps[index]}`}
        onInput={onInput}
      />
      {props.arrows ? (
        <button
          type="button"
          class="ins-btn"
          data-testid={ids.next}
          disabled={index >= steps.length - 1}
          onClick={() => go(index + 1)}
        >
          ›
        </button>
      ) : null}
      <span class="ins-cam-step" data-testid={ids.label} data-step={steps[index]}>
        step <b>{steps[index]}</b>
      </span>
      {props.count === false ? null : (
        <span class="ins-muted ins-cam-count">
          {index + 1} / {steps.length}
        </span>
      )}
      {play?.onFps ? <FpsSelect fps={play.fps} onFps={play.onFps} id={ids.fps} /> : null}
      {props.children}
    </div>
  );
}
