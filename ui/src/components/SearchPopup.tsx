// The quick-add box: double-click the canvas (or drop a link on empty space) and type.
import { useEffect, useRef, useState } from "react";
import { searchNodes, typeColor } from "../lib/schema";
import { rankForLink } from "../lib/linkSuggest";
import { editor } from "../state/editor";
import { useStore } from "../state/store";

export interface SearchRequest {
  screen: { x: number; y: number };
  /** A dragged link's type: list only nodes that can take it (wantInput) or feed it (wantOutput). */
  wantInput?: string;
  wantOutput?: string;
}

export function SearchPopup({ req, onPick, onClose }: { req: SearchRequest; onPick: (type: string) => void; onClose: () => void }) {
  const schemas = useStore(editor, (s) => s.schemas);
  const [query, setQuery] = useState("");
  const [active, setActive] = useState(0);
  const inputRef = useRef<HTMLInputElement>(null);
  useEffect(() => inputRef.current?.focus(), []);
  const specials = "reroute".startsWith(query.trim().toLowerCase()) && query.trim() && !req.wantInput && !req.wantOutput ? ["__reroute"] : [];
  const linked = req.wantInput !== undefined || req.wantOutput !== undefined;
  const results = linked ? rankForLink(schemas, query, req) : searchNodes(schemas, query, { limit: 50 });
  const items = [...results.map((r) => r.name), ...specials];
  const left = Math.min(req.screen.x, window.innerWidth - 380);
  const top = Math.min(req.screen.y, window.innerHeight - 420);
  return (
    <div className="ng-search-backdrop" onMouseDown={onClose}>
      <div className="ng-search" style={{ left, top }} onMouseDown={(e) => e.stopPropagation()} role="dialog" aria-label="Add node">
        <input
          ref={inputRef}
          placeholder={req.wantInput ? `Nodes that take ${req.wantInput}…` : req.wantOutput ? `Nodes that give ${req.wantOutput}…` : "Search nodes…"}
          value={query}
          spellCheck={false}
          aria-label="Search nodes"
          onChange={(e) => {
            setQuery(e.target.value);
            setActive(0);
          }}
          onKeyDown={(e) => {
            if (e.key === "Escape") onClose();
            else if (e.key === "ArrowDown") {
              e.preventDefault();
              setActive((a) => Math.min(a + 1, items.length - 1));
            } else if (e.key === "ArrowUp") {
              e.preventDefault();
              setActive((a) => Math.max(a - 1, 0));
            } else if (e.key === "Enter" && items[active]) onPick(items[active]);
          }}
        />
        <div className="ng-search-list">
          {results.map((s, k) => (
            <div
              key={s.name}
              className={`ng-search-item ${k === active ? "active" : ""}`}
              onMouseEnter={() => setActive(k)}
              onClick={() => onPick(s.name)}
              data-testid={`search-${s.name}`}
            >
              <span className="ng-search-name">{s.display_name}</span>
              <span className="ng-search-types">
                {s.outputs.slice(0, 3).map((o) => (
                  <i key={o.name} style={{ background: typeColor(o.type) }} title={o.type} />
                ))}
              </span>
              <span className="ng-search-cat">{s.category}</span>
            </div>
          ))}
          {specials.map((sp, k) => (
            <div key={sp} className={`ng-search-item ${results.length + k === active ? "active" : ""}`} onClick={() => onPick(sp)}>
              <span className="ng-search-name">Reroute point</span>
              <span className="ng-search-cat">editor</span>
            </div>
          ))}
          {!items.length && <div className="ng-empty-note">Nothing matches.</div>}
        </div>
      </div>
    </div>
  );
}
