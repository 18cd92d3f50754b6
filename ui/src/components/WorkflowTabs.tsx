// The workflow tab bar: one tab per open document, a dot on unsaved ones, × to close (asking first
// when unsaved), + for a new empty workflow. Middle-click closes, as in ComfyUI and browsers.
import { useStore } from "../state/store";
import { closeTab, newTab, switchTab, tabs } from "../state/tabs";
import { clearAllRuns } from "../state/runtime";

export function WorkflowTabs() {
  const list = useStore(tabs, (s) => s.list);
  const active = useStore(tabs, (s) => s.active);
  return (
    <div className="ng-wtabs" role="tablist" aria-label="Open workflows" data-testid="workflow-tabs">
      {list.map((t) => (
        <div
          key={t.id}
          role="tab"
          aria-selected={t.id === active}
          className={`ng-wtab ${t.id === active ? "active" : ""} ${t.dirty ? "dirty" : ""}`}
          data-testid="workflow-tab"
          data-tab-id={t.id}
          title={t.dirty ? `${t.name} (unsaved changes)` : t.name}
          onClick={() => {
            if (t.id !== active) {
              clearAllRuns();
              switchTab(t.id);
            }
          }}
          onAuxClick={(e) => e.button === 1 && closeTab(t.id)}
        >
          <span className="ng-wtab-name">{t.name}</span>
          {t.dirty && <span className="ng-wtab-dirty" aria-label="unsaved">●</span>}
          <button
            className="ng-wtab-close"
            aria-label={`Close ${t.name}`}
            onClick={(e) => {
              e.stopPropagation();
              closeTab(t.id);
            }}
          >
            ×
          </button>
        </div>
      ))}
      <button className="ng-wtab-new" aria-label="New workflow tab" title="New workflow" onClick={() => newTab()}>
        +
      </button>
    </div>
  );
}
