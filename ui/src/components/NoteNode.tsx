// A note on the canvas: a resizable yellow card with editable text, as ComfyUI's Note / MarkdownNote.
import { memo } from "react";
import { Node, NodeProps, NodeResizer } from "@xyflow/react";
import { NoteData } from "../lib/graph";
import { commitCurrent } from "../state/editor";
import { setNoteText } from "../state/notes";

export const NoteNode = memo(function NoteNode({ id, data, selected }: NodeProps<Node<NoteData>>) {
  const label = data.title || (data.noteType === "MarkdownNote" ? "Markdown Note" : "Note");
  return (
    <div className={`ng-note ${selected ? "selected" : ""}`} data-testid={`note-${id}`} style={{ "--note-bg": data.bgcolor ?? "#653", "--note-fg": data.color ?? "#432" } as React.CSSProperties}>
      <NodeResizer isVisible={Boolean(selected)} minWidth={120} minHeight={60} onResizeEnd={() => commitCurrent({ label: "resize note" })} />
      <div className="ng-note-title">{label}</div>
      <textarea
        className="ng-note-text nodrag nowheel"
        aria-label={label}
        value={data.text}
        placeholder={data.noteType === "MarkdownNote" ? "Markdown…" : "Note…"}
        spellCheck={false}
        onChange={(e) => setNoteText(id, e.target.value)}
        onKeyDown={(e) => e.stopPropagation()}
      />
    </div>
  );
});
