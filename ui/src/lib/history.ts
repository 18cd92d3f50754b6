// Undo/redo as a log of whole graph states. Each entry is a complete, consistent graph (nodes
// and the links among them, shared structurally with its neighbours), so undoing can never leave
// a link without its node or a node without its links: the ComfyUI failure this avoids.

export interface UndoOptions {
  /** Successive commits with the same key within `coalesceMs` make one undo step (typing in a widget). */
  coalesceKey?: string;
  label?: string;
}

interface Entry<S> {
  state: S;
  label: string;
}

export class UndoLog<S> {
  private past: Entry<S>[] = [];
  private future: Entry<S>[] = [];
  private committed: S;
  private lastKey: string | undefined;
  private lastAt = 0;

  constructor(initial: S, private limit = 200, private coalesceMs = 1200, private now: () => number = () => Date.now()) {
    this.committed = initial;
  }

  /** Start afresh from a state (a loaded workflow); the old history is dropped. */
  reset(state: S): void {
    this.past = [];
    this.future = [];
    this.committed = state;
    this.lastKey = undefined;
  }

  /** Replace the current state without an undo step (the same document, re-laid-out once drawn). */
  amend(state: S): void {
    this.committed = state;
  }

  /** Record that `state` is the result of one user action. */
  commit(state: S, opts: UndoOptions = {}): void {
    if (state === this.committed) return;
    const t = this.now();
    const coalesce = opts.coalesceKey !== undefined && opts.coalesceKey === this.lastKey && t - this.lastAt < this.coalesceMs;
    if (!coalesce) {
      this.past.push({ state: this.committed, label: opts.label ?? "" });
      if (this.past.length > this.limit) this.past.shift();
    }
    this.committed = state;
    this.future = [];
    this.lastKey = opts.coalesceKey;
    this.lastAt = t;
  }

  /** The state to show after undo, or null when there is nothing to undo. */
  undo(current: S): S | null {
    const prev = this.past.pop();
    if (!prev) return null;
    this.future.push({ state: current, label: prev.label });
    this.committed = prev.state;
    this.lastKey = undefined;
    return prev.state;
  }

  redo(current: S): S | null {
    const next = this.future.pop();
    if (!next) return null;
    this.past.push({ state: current, label: next.label });
    this.committed = next.state;
    this.lastKey = undefined;
    return next.state;
  }

  get canUndo(): boolean {
    return this.past.length > 0;
  }

  get canRedo(): boolean {
    return this.future.length > 0;
  }

  get depth(): { undo: number; redo: number } {
    return { undo: this.past.length, redo: this.future.length };
  }
}
