// The overlay viewer's step player: the slider over the selected series' recorded steps, play (one
// step per tick once its frame is drawn) with a speed select, and the engine's loading/error status.
import { StepPlayer } from "../../widgets/StepPlayer";
import { camStep, DEFAULT_FPS, frameModel, playing, sliderIndex, sliderSteps } from "./state";
import { activeEngine, engineStatus, fps } from "./viewer";

/** The shown step is painted on every tile. */
function drawn(): boolean {
  const m = frameModel.peek();
  return m !== null && activeEngine()?.drawnStep === m.step;
}

export function CamStepBar() {
  const steps = sliderSteps.value;
  const status = engineStatus.value;
  if (!steps.length) return null;
  return (
    <StepPlayer
      class="ins-cam-stepbar"
      steps={steps}
      index={sliderIndex.value}
      onIndex={(i) => {
        camStep.value = sliderSteps.peek()[i];
      }}
      ids={{ slider: "step-slider", label: "step-label", play: "play-button", fps: "fps-select" }}
      ariaLabel="Training step"
      play={{
        playing: playing.value,
        onPlaying: (p) => {
          playing.value = p;
        },
        fps: fps.value,
        onFps: (f) => {
          fps.value = f || DEFAULT_FPS;
        },
        ready: drawn,
        title: "Play the maps over training steps",
      }}
    >
      {status.pending ? <span class="ins-loading">Loading…</span> : null}
      {status.error ? (
        <span class="ins-cam-err" role="alert" title={status.error}>
          {status.error}
        </span>
      ) : null}
    </StepPlayer>
  );
}
