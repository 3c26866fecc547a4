// Form controls shared by the settings panels and toolbars: a select, a colormap select, a slider
// and a checkbox, bare or as a labelled row (`ins-field`). One definition each, so every
// panel's controls render the same markup; ids and test ids are passed in by the panel.
import type { ComponentChildren } from "preact";
import { COLORMAP_NAMES, type ColormapName, isColormapName } from "../lib/colormaps";

export interface SelectOption {
  value: string;
  label: ComponentChildren;
}

export interface SelectProps {
  id?: string;
  testid?: string;
  value: string;
  options: readonly SelectOption[];
  /** Gets the chosen option's value. */
  onChange: (value: string) => void;
}

/** A `<select>` in the tab's style. */
export function Select(props: SelectProps) {
  return (
    <select
      id={props.id}
      class="ins-select"
      data-testid={props.testid}
      value={props.value}
      onChange={(e) => props.onChange((e.currentTarget as HTMLSelectElement).value)}
    >
      {props.options.map((o) => (
        <option key={o.value} value={o.value}>
          {o.label}
        </option>
      ))}
    </select>
  );
}

/** One row of a settings section: a label for the control with `id`, then the control. */
export function Field(props: { id: string; label: string; class?: string; children: ComponentChildren }) {
  return (
    <div class={props.class ? "ins-field " + props.class : "ins-field"}>
      <label for={props.id}>{props.label}</label>
      {props.children}
    </div>
  );
}

/** A labelled select row. */
export function SelectField(props: SelectProps & { id: string; label: string }) {
  return (
    <Field id={props.id} label={props.label}>
      <Select {...props} />
    </Field>
  );
}

const COLORMAP_OPTIONS: readonly SelectOption[] = COLORMAP_NAMES.map((c) => ({ value: c, label: c }));

export interface ColormapSelectProps {
  id?: string;
  testid?: string;
  value: ColormapName;
  onChange: (name: ColormapName) => void;
}

/** A select of every colormap by name; values that are not a colormap never reach onChange. */
export function ColormapSelect(props: ColormapSelectProps) {
  return (
    <Select
      id={props.id}
      testid={props.testid}
      value={props.value}
      options={COLORMAP_OPTIONS}
      onChange={(v) => {
        if (isColormapName(v)) props.onChange(v);
      }}
    />
  );
}

/** A labelled colormap row ("Colormap"). */
export function ColormapField(props: ColormapSelectProps & { id: string }) {
  return (
    <Field id={props.id} label="Colormap">
      <ColormapSelect {...props} />
    </Field>
  );
}

export interface RangeProps {
  id?: string;
  testid?: string;
  /** Classes of the input (default "ins-range"). */
  class?: string;
  min: number;
  max: number;
  step: number;
  value: number;
  ariaLabel?: string;
  ariaValueText?: string;
  /** Gets the slider's value as a number. */
  onInput: (value: number) => void;
}

/** An `<input type="range">` over numbers. */
export function Range(props: RangeProps) {
  return (
    <input
      id={props.id}
      type="range"
      class={props.class ?? "ins-range"}
      data-testid={props.testid}
      min={props.min}
      max={props.max}
      step={props.step}
      value={props.value}
      aria-label={props.ariaLabel}
      aria-valuetext={props.ariaValueText}
      onInput={(e) => props.onInput(Number((e.currentTarget as HTMLInputElement).value))}
    />
  );
}

/** A labelled slider row with its value shown after it as `shown`. */
export function RangeField(props: RangeProps & { id: string; label: string; shown: ComponentChildren }) {
  return (
    <Field id={props.id} label={props.label} class="ins-range-field">
      <Range {...props} />
      <span class="ins-range-val">{props.shown}</span>
    </Field>
  );
}

/** A checkbox with its label text (`ins-toggle`). */
export function Toggle(props: {
  testid: string;
  class?: string;
  value?: string;
  checked: boolean;
  disabled?: boolean;
  onChange: (checked: boolean) => void;
  children: ComponentChildren;
}) {
  return (
    <label class={props.class ? "ins-toggle " + props.class : "ins-toggle"}>
      <input
        type="checkbox"
        data-testid={props.testid}
        value={props.value}
        checked={props.checked}
        disabled={props.disabled}
        onChange={(e) => props.onChange((e.currentTarget as HTMLInputElement).checked)}
      />
      {props.children}
    </label>
  );
}
