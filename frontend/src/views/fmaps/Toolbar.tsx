// The feature-map panel's toolbar: the step player, then the display controls (colormap, scale,
// token view, size, channels by index).
import type { ComponentChildren } from "preact";
import { ColormapSelect, Range, Select } from "../../widgets/fields";
import { StepPlayer } from "../../widgets/StepPlayer";
import type { FeatureMapLayer } from "./api";
import { parseChannels } from "./math";
import { fmChannelText, fmColormap, fmScale, fmTileSize, fmTokenView, MAX_FMAP_SIZE, MIN_FMAP_SIZE } from "./state";

/** A toolbar control: its label text, then the control. */
function Control(props: { label: string; children: ComponentChildren }) {
  return (
    <label class="ins-fm-control">
      {props.label}
      {props.children}
    </label>
  );
}

/** Play shows one step every 600 ms. */
const PLAY_FPS = 1000 / 600;

export interface ToolbarProps {
  info: FeatureMapLayer | null;
  steps: number[];
  index: number;
  onStep: (index: number) => void;
  playing: boolean;
  onPlaying: (playing: boolean) => void;
}

export function Toolbar(props: ToolbarProps) {
  const { info, steps, index } = props;
  const layer = info?.layer ?? "";
  const text = fmChannelText.value[layer] ?? "";
  const picked = info ? parseChannels(text, info.channels) : null;
  return (
    <div class="ins-fm-toolbar">
      <StepPlayer
        class="ins-cam-stepbar ins-fm-stepbar"
        steps={steps}
        index={index}
        onIndex={props.onStep}
        ids={{ slider: "fmap-step-slider", label: "fmap-step-label", play: "fmap-play" }}
        ariaLabel="Training step"
        play={{ playing: props.playing, onPlaying: props.onPlaying, fps: PLAY_FPS }}
      />
      <div class="ins-fm-controls">
        <Control label="Colormap">
          <ColormapSelect
            testid="fmap-colormap"
            value={fmColormap.value}
            onChange={(c) => {
              fmColormap.value = c;
            }}
          />
        </Control>
        <Control label="Scale">
          <Select
            testid="fmap-scale"
            value={fmScale.value}
            options={[
              { value: "map", label: "per map" },
              { value: "shared", label: "shared across the grid" },
            ]}
            onChange={(v) => {
              fmScale.value = v === "shared" ? "shared" : "map";
            }}
          />
        </Control>
        {info?.layout === "tokens" && info.gridSide > 0 ? (
          <Control label="Tokens">
            <Select
              testid="fmap-token-view"
              value={fmTokenView.value}
              options={[
                { value: "tokens", label: "token × channel" },
                { value: "grid", label: `${info.gridSide}×${info.gridSide} grid${info.classTokens === 1 ? " (without the class token)" : info.classTokens > 1 ? ` (without the ${info.classTokens} class/register tokens)` : ""}` },
              ]}
              onChange={(v) => {
                fmTokenView.value = v === "grid" ? "grid" : "tokens";
              }}
            />
          </Control>
        ) : null}
        <Control label="Size">
          <Range
            testid="fmap-size"
            min={MIN_FMAP_SIZE}
            max={MAX_FMAP_SIZE}
            step={8}
            value={fmTileSize.value}
            onInput={(v) => {
              fmTileSize.value = v;
            }}
          />
        </Control>
        {info && info.channels.length ? (
          <label class="ins-fm-control ins-fm-channels">
            Channels
            <input
              type="text"
              class="ins-input"
              data-testid="fmap-channels"
              placeholder={`all recorded (${info.channels.length})`}
              value={text}
              spellcheck={false}
              onChange={(e) => {
                fmChannelText.value = { ...fmChannelText.peek(), [layer]: (e.currentTarget as HTMLInputElement).value };
              }}
            />
          </label>
        ) : null}
      </div>
      {picked?.error ? (
        <div class="ins-hint ins-hint-flat ins-fm-warn" role="alert" data-testid="fmap-channels-error">
          {picked.error}
        </div>
      ) : null}
    </div>
  );
}
