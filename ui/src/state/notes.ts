// Notes on the canvas (ComfyUI's Note / MarkdownNote): editor-only, saved in the document's
// "ui.notes", exported to ComfyUI as its note nodes, never sent to the engine.
import { GNode, NoteData, XY, isNote, newNote, nextId } from "../lib/graph";
import { commit, editor } from "./editor";

export function addNote(position: XY, noteType: "Note" | "MarkdownNote" = "Note"): string {
  const s = editor.get();
  const id = nextId(s.nodes, "n");
  commit({ nodes: [...s.nodes, newNote(id, position, "", noteType)], edges: s.edges }, { label: "add note" });
  return id;
}

export function setNoteText(id: string, text: string) {
  const s = editor.get();
  const nodes = s.nodes.map((n): GNode => (n.id === id && isNote(n) ? { ...n, data: { ...n.data, text } as NoteData } : n));
  commit({ nodes, edges: s.edges }, { coalesceKey: `${id}.note`, label: "edit note" });
}
