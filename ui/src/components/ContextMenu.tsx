// Right-click menus for nodes, links and the canvas.
import { useEffect } from "react";

export interface MenuItem {
  label: string;
  onClick?: () => void;
  disabled?: boolean;
  hint?: string;
  separator?: boolean;
  heading?: boolean;
  /** A row of colour buttons (the node colour entry). */
  swatches?: { name: string; color: string; onClick: () => void }[];
}

export function ContextMenu({ x, y, items, onClose }: { x: number; y: number; items: MenuItem[]; onClose: () => void }) {
  useEffect(() => {
    const off = (e: KeyboardEvent) => e.key === "Escape" && onClose();
    addEventListener("keydown", off);
    return () => removeEventListener("keydown", off);
  }, [onClose]);
  const left = Math.min(x, window.innerWidth - 240);
  const top = Math.min(y, window.innerHeight - 28 * items.length - 16);
  return (
    <div className="ng-ctx-backdrop" onMouseDown={onClose} onContextMenu={(e) => (e.preventDefault(), onClose())}>
      <div className="ng-menu-list ng-ctx" style={{ left, top }} onMouseDown={(e) => e.stopPropagation()} role="menu">
        {items.map((it, k) =>
          it.separator ? (
            <div key={k} className="ng-menu-sep" />
          ) : it.swatches ? (
            <div key={k} className="ng-menu-swatches" role="group" aria-label={it.label}>
              <span className="ng-menu-swatch-label">{it.label}</span>
              {it.swatches.map((sw) => (
                <button
                  key={sw.name}
                  className={`ng-swatch ${sw.color ? "" : "none"}`}
                  style={{ background: sw.color || undefined }}
                  title={sw.name}
                  aria-label={`colour ${sw.name}`}
                  onClick={() => {
                    onClose();
                    sw.onClick();
                  }}
                />
              ))}
            </div>
          ) : it.heading ? (
            <div key={k} className="ng-menu-head">{it.label}</div>
          ) : (
            <button
              key={k}
              className="ng-menu-item"
              disabled={it.disabled}
              role="menuitem"
              onClick={() => {
                onClose();
                it.onClick?.();
              }}
            >
              {it.label}
              {it.hint && <span className="ng-kbd">{it.hint}</span>}
            </button>
          ),
        )}
      </div>
    </div>
  );
}
