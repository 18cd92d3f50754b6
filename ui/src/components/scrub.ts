// Number scrubbing, as ComfyUI's number widgets: press on the widget's label and drag sideways; each
// few pixels move the value one step (Shift: ten steps), clamped to the input's range.
import type { PointerEvent as ReactPointerEvent } from "react";
import type { InputSchema } from "../lib/schema";

export const SCRUB_PX_PER_STEP = 6;

export function scrubValue(input: InputSchema, start: number, dx: number, fast = false): number {
  const step = input.step ?? (input.type === "INT" ? 1 : 0.01);
  let v = start + Math.trunc(dx / SCRUB_PX_PER_STEP) * step * (fast ? 10 : 1);
  if (input.min !== undefined) v = Math.max(input.min, v);
  if (input.max !== undefined) v = Math.min(input.max, v);
  return input.type === "INT" ? Math.round(v) : Number(v.toPrecision(12));
}

/** Pointer-down handler for a number widget's label. */
export function startScrub(e: ReactPointerEvent<HTMLElement>, input: InputSchema, value: unknown, onChange: (v: number) => void) {
  if (e.button !== 0) return;
  e.preventDefault();
  e.stopPropagation();
  const el = e.currentTarget;
  el.setPointerCapture(e.pointerId);
  const x0 = e.clientX;
  const start = typeof value === "number" ? value : 0;
  let last = start;
  const move = (ev: PointerEvent) => {
    const v = scrubValue(input, start, ev.clientX - x0, ev.shiftKey);
    if (v !== last) {
      last = v;
      onChange(v);
    }
  };
  const up = () => {
    el.removeEventListener("pointermove", move);
    el.removeEventListener("pointerup", up);
    el.removeEventListener("pointercancel", up);
  };
  el.addEventListener("pointermove", move);
  el.addEventListener("pointerup", up);
  el.addEventListener("pointercancel", up);
}
