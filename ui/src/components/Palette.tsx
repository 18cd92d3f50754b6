// The node palette: categories and a filter; drag an entry onto the canvas (or click it) to add it.
import { useMemo, useState } from "react";
import { CategoryTree, NodeSchema, categoryTree, searchNodes, typeColor } from "../lib/schema";
import { editor } from "../state/editor";
import { useStore } from "../state/store";
import { isHiddenCategory } from "../lib/linkSuggest";

export const DRAG_MIME = "application/x-nodegraph-node";

function Entry({ s, onAdd }: { s: NodeSchema; onAdd: (type: string) => void }) {
  return (
    <div
      className="ng-palette-item"
      draggable
      data-testid={`palette-${s.name}`}
      title={`${s.name}${s.description ? `\n\n${s.description}` : ""}`}
      onDragStart={(e) => {
        e.dataTransfer.setData(DRAG_MIME, s.name);
        e.dataTransfer.setData("text/plain", s.name);
        e.dataTransfer.effectAllowed = "copy";
      }}
      onClick={() => onAdd(s.name)}
    >
      <span className="ng-palette-name">{s.display_name}</span>
      <span className="ng-palette-types">
        {s.outputs.slice(0, 4).map((o) => (
          <i key={o.name} style={{ background: typeColor(o.type) }} />
        ))}
      </span>
    </div>
  );
}

function Category({ t, depth, onAdd, open, toggle }: { t: CategoryTree; depth: number; onAdd: (type: string) => void; open: Set<string>; toggle: (p: string) => void }) {
  const isOpen = open.has(t.path);
  const count = (x: CategoryTree): number => x.nodes.length + x.children.reduce((a, c) => a + count(c), 0);
  return (
    <div className="ng-palette-cat" style={{ "--depth": depth } as React.CSSProperties}>
      <button className="ng-palette-cat-head" onClick={() => toggle(t.path)} aria-expanded={isOpen}>
        <span className={`ng-caret ${isOpen ? "open" : ""}`}>▸</span>
        <span>{t.name}</span>
        <span className="ng-count">{count(t)}</span>
      </button>
      {isOpen && (
        <div className="ng-palette-cat-body">
          {t.children.map((c) => (
            <Category key={c.path} t={c} depth={depth + 1} onAdd={onAdd} open={open} toggle={toggle} />
          ))}
          {t.nodes.map((s) => (
            <Entry key={s.name} s={s} onAdd={onAdd} />
          ))}
        </div>
      )}
    </div>
  );
}

export function Palette({ onAdd }: { onAdd: (type: string) => void }) {
  const allSchemas = useStore(editor, (s) => s.schemas);
  // _for_testing nodes stay reachable from the canvas search (double-click), not listed here
  const schemas = useMemo(() => Object.fromEntries(Object.entries(allSchemas).filter(([, s]) => !isHiddenCategory(s.category))), [allSchemas]);
  const [query, setQuery] = useState("");
  const tree = useMemo(() => categoryTree(schemas), [schemas]);
  const [open, setOpen] = useState<Set<string>>(() => {
    try {
      const saved = JSON.parse(localStorage.getItem("nodegraph:palette") ?? "null");
      if (Array.isArray(saved)) return new Set(saved);
    } catch {
      /* default below */
    }
    return new Set(["image", "primitives", "sampling", "loaders", "conditioning", "latent"]);
  });
  const toggle = (p: string) =>
    setOpen((o) => {
      const n = new Set(o);
      if (n.has(p)) n.delete(p);
      else n.add(p);
      localStorage.setItem("nodegraph:palette", JSON.stringify([...n]));
      return n;
    });
  const results = query.trim() ? searchNodes(schemas, query, { limit: 80 }) : null;
  return (
    <aside className="ng-palette" aria-label="Node palette">
      <div className="ng-palette-search">
        <input placeholder="Filter nodes…" value={query} onChange={(e) => setQuery(e.target.value)} aria-label="Filter nodes" spellCheck={false} />
      </div>
      <div className="ng-palette-list">
        {results
          ? results.map((s) => (
              <div key={s.name}>
                <Entry s={s} onAdd={onAdd} />
              </div>
            ))
          : tree.children.map((c) => <Category key={c.path} t={c} depth={0} onAdd={onAdd} open={open} toggle={toggle} />)}
        {results && !results.length && <div className="ng-empty-note">No node matches “{query}”.</div>}
      </div>
      <div className="ng-palette-hint">Drag onto the canvas · double-click the canvas to search</div>
    </aside>
  );
}
