// Widgets: the literal inputs of a node, drawn from its schema.
import { startScrub } from "./scrub";
import { useEffect, useRef, useState } from "react";
import { InputSchema, checkValue } from "../lib/schema";
import { api, modelNames, viewUrl } from "../lib/api";
import { SeedControl } from "../lib/graph";
import { WidgetProps, extensionWidget } from "../extensions";
import { toast } from "../state/runtime";

const label = (inp: InputSchema) => inp.name.replace(/_/g, " ");

function formatNumber(inp: InputSchema, v: unknown): string {
  if (typeof v !== "number" || !Number.isFinite(v)) return String(v ?? "");
  if (inp.type === "INT") return String(Math.round(v));
  const step = inp.step ?? 0.01;
  const decimals = Math.min(6, Math.max(0, Math.ceil(-Math.log10(step) - 1e-9)));
  return v.toFixed(decimals);
}

/** Number as a pill: ‹ label value ›. The value is typed in directly; arrows step. */
function NumberWidget({ input, value, onChange, invalid }: WidgetProps) {
  const [text, setText] = useState(formatNumber(input, value));
  const [editing, setEditing] = useState(false);
  useEffect(() => {
    if (!editing) setText(formatNumber(input, value));
  }, [value, editing, input]);
  const step = input.step ?? (input.type === "INT" ? 1 : 0.01);
  const commitText = () => {
    setEditing(false);
    const v = Number(text.trim());
    if (text.trim() === "" || Number.isNaN(v)) {
      setText(formatNumber(input, value));
      return;
    }
    // out-of-range values are kept (and flagged) rather than clamped silently
    const out = input.type === "INT" ? Math.round(v) : Number(v.toPrecision(12));
    if (out !== value) onChange(out);
    else setText(formatNumber(input, value));
  };
  const bump = (dir: number) => {
    const cur = typeof value === "number" ? value : 0;
    let v = cur + dir * step;
    if (input.min !== undefined && v < input.min) v = input.min;
    if (input.max !== undefined && v > input.max) v = input.max;
    onChange(input.type === "INT" ? Math.round(v) : Number(v.toPrecision(12)));
  };
  if (input.display === "slider" && input.min !== undefined && input.max !== undefined && input.max - input.min < 1e9) {
    const pct = typeof value === "number" ? ((value - input.min) / (input.max - input.min)) * 100 : 0;
    return (
      <label className={`ng-w ng-w-slider ${invalid ? "invalid" : ""}`}>
        <span className="ng-w-label">{label(input)}</span>
        <input
          className="nodrag"
          type="range"
          min={input.min}
          max={input.max}
          step={step}
          value={typeof value === "number" ? value : 0}
          style={{ "--pct": `${pct}%` } as React.CSSProperties}
          onChange={(e) => onChange(Number(e.target.value))}
          aria-label={input.name}
        />
        <span className="ng-w-value">{formatNumber(input, value)}</span>
      </label>
    );
  }
  return (
    <div className={`ng-w ng-w-number ${invalid ? "invalid" : ""}`}>
      <button className="ng-w-step nodrag" tabIndex={-1} onClick={() => bump(-1)} aria-label={`decrease ${input.name}`}>‹</button>
      <span className="ng-w-label ng-scrub nodrag" title="Drag sideways to change" data-scrub={input.name} onPointerDown={(e) => startScrub(e, input, value, onChange)}>{label(input)}</span>
      <input
        className="ng-w-input nodrag"
        value={text}
        inputMode="decimal"
        name={input.name}
        aria-label={input.name}
        onFocus={(e) => {
          setEditing(true);
          e.target.select();
        }}
        onChange={(e) => setText(e.target.value)}
        onBlur={commitText}
        onKeyDown={(e) => {
          if (e.key === "Enter") (e.target as HTMLInputElement).blur();
          if (e.key === "Escape") {
            setText(formatNumber(input, value));
            setEditing(false);
            (e.target as HTMLInputElement).blur();
          }
          if (e.key === "ArrowUp" || e.key === "ArrowDown") {
            e.preventDefault();
            bump(e.key === "ArrowUp" ? 1 : -1);
          }
        }}
      />
      <button className="ng-w-step nodrag" tabIndex={-1} onClick={() => bump(1)} aria-label={`increase ${input.name}`}>›</button>
    </div>
  );
}

/** An INT that holds an RGB colour (display "color"). */
function ColorWidget({ input, value, onChange }: WidgetProps) {
  const hex = `#${(typeof value === "number" ? value : 0).toString(16).padStart(6, "0").slice(-6)}`;
  return (
    <label className="ng-w ng-w-color">
      <span className="ng-w-label">{label(input)}</span>
      <span className="ng-w-value">{hex}</span>
      <input className="nodrag" type="color" value={hex} aria-label={input.name} onChange={(e) => onChange(parseInt(e.target.value.slice(1), 16))} />
    </label>
  );
}

function BooleanWidget({ input, value, onChange }: WidgetProps) {
  const on = Boolean(value);
  return (
    <button className={`ng-w ng-w-toggle nodrag ${on ? "on" : ""}`} role="switch" aria-checked={on} aria-label={input.name} onClick={() => onChange(!on)}>
      <span className="ng-w-label">{label(input)}</span>
      <span className="ng-w-value">{on ? "true" : "false"}</span>
      <span className="ng-switch" />
    </button>
  );
}

const modelCache = new Map<string, Promise<string[]>>();

/** A choice. Model folders are listed by the server when the list opens, so new files show up. */
function ComboWidget({ input, value, onChange, invalid }: WidgetProps) {
  const [choices, setChoices] = useState<string[]>(input.choices ?? []);
  useEffect(() => setChoices(input.choices ?? []), [input.choices]);
  const refresh = () => {
    if (!input.folder) return;
    const p = api.models(input.folder).then(modelNames);
    modelCache.set(input.folder, p);
    p.then((list) => setChoices(list)).catch(() => {});
  };
  const current = String(value ?? "");
  const all = current && !choices.includes(current) ? [current, ...choices] : choices;
  return (
    <label className={`ng-w ng-w-combo ${invalid ? "invalid" : ""}`}>
      <span className="ng-w-label">{label(input)}</span>
      <select className="nodrag" value={current} name={input.name} aria-label={input.name} onFocus={refresh} onMouseDown={refresh} onChange={(e) => onChange(e.target.value)}>
        {all.length === 0 && <option value="">(none found)</option>}
        {all.map((c) => (
          <option key={c} value={c}>
            {c}
          </option>
        ))}
      </select>
      <span className="ng-w-caret">▾</span>
    </label>
  );
}

function StringWidget({ input, value, onChange }: WidgetProps) {
  const [text, setText] = useState(String(value ?? ""));
  useEffect(() => setText(String(value ?? "")), [value]);
  const push = (v: string) => {
    setText(v);
    onChange(v);
  };
  if (input.multiline) {
    return (
      <textarea
        className="ng-w-text nodrag nowheel"
        placeholder={label(input)}
        value={text}
        name={input.name}
        aria-label={input.name}
        spellCheck={false}
        onChange={(e) => push(e.target.value)}
      />
    );
  }
  return (
    <label className="ng-w ng-w-string">
      <span className="ng-w-label">{label(input)}</span>
      <input className="ng-w-input nodrag" value={text} name={input.name} aria-label={input.name} spellCheck={false} onChange={(e) => push(e.target.value)} />
    </label>
  );
}

/** LoadImage's choice: pick an uploaded image, or upload one (button, or drop a file on the widget). */
function ImageUploadWidget(props: WidgetProps) {
  const { input, value, onChange } = props;
  const fileRef = useRef<HTMLInputElement>(null);
  const [extra, setExtra] = useState<string[]>([]);
  const upload = async (file: File) => {
    try {
      const r = await api.upload(file);
      const name = r.subfolder ? `${r.subfolder}/${r.name}` : r.name;
      setExtra((x) => (x.includes(name) ? x : [...x, name]));
      onChange(name);
    } catch (e) {
      toast(`Upload failed: ${(e as Error).message}`, "error");
    }
  };
  const choices = [...new Set([...(input.choices ?? []), ...extra])];
  const v = String(value ?? "");
  const slash = v.lastIndexOf("/");
  const src = v ? viewUrl({ filename: slash >= 0 ? v.slice(slash + 1) : v, subfolder: slash >= 0 ? v.slice(0, slash) : "", type: "input" }) : "";
  return (
    <div
      className="ng-w-upload"
      onDragOver={(e) => {
        if (e.dataTransfer.types.includes("Files")) {
          e.preventDefault();
          e.stopPropagation();
        }
      }}
      onDrop={(e) => {
        const f = e.dataTransfer.files?.[0];
        if (f) {
          e.preventDefault();
          e.stopPropagation();
          void upload(f);
        }
      }}
    >
      <ComboWidget {...props} input={{ ...input, choices }} />
      <button className="ng-btn ng-btn-small nodrag" onClick={() => fileRef.current?.click()}>
        Upload image…
      </button>
      <input ref={fileRef} type="file" accept="image/*" hidden data-testid="image-upload" onChange={(e) => e.target.files?.[0] && upload(e.target.files[0])} />
      {src && <img className="ng-node-image single" src={src} alt={v} draggable={false} onError={(e) => ((e.target as HTMLImageElement).style.display = "none")} />}
    </div>
  );
}

export function SeedControlSelect({ value, onChange }: { value: SeedControl; onChange: (c: SeedControl) => void }) {
  return (
    <label className="ng-w ng-w-combo ng-w-control">
      <span className="ng-w-label">control after run</span>
      <select className="nodrag" value={value} aria-label="control after generate" onChange={(e) => onChange(e.target.value as SeedControl)}>
        <option value="fixed">fixed</option>
        <option value="randomize">randomize</option>
        <option value="increment">increment</option>
        <option value="decrement">decrement</option>
      </select>
      <span className="ng-w-caret">▾</span>
    </label>
  );
}

export function Widget(props: Omit<WidgetProps, "invalid">) {
  const invalid = checkValue(props.input, props.value) !== null;
  const p = { ...props, invalid };
  const Ext = extensionWidget(props.input);
  if (Ext) return <Ext {...p} />;
  const { input } = props;
  if (input.display === "image_upload") return <ImageUploadWidget {...p} />;
  switch (input.type) {
    case "INT":
      return input.display === "color" ? <ColorWidget {...p} /> : <NumberWidget {...p} />;
    case "FLOAT":
      return <NumberWidget {...p} />;
    case "BOOLEAN":
      return <BooleanWidget {...p} />;
    case "COMBO":
      return <ComboWidget {...p} />;
    default:
      return <StringWidget {...p} />;
  }
}
