// A note on the canvas: a resizable yellow card with editable text, as ComfyUI's Note / MarkdownNote.
import { memo, useState } from "react";
import { Node, NodeProps, NodeResizer } from "@xyflow/react";
import { NoteData } from "../lib/graph";
import { commitCurrent } from "../state/editor";
import { setNoteText } from "../state/notes";
import { Markdown } from "./Markdown";

export const NoteNode = memo(function NoteNode({ id, data, selected }: NodeProps<Node<NoteData>>) {
  const label = data.title || (data.noteType === "MarkdownNote" ? "Markdown Note" : "Note");
  // a MarkdownNote shows its text rendered; double-click edits it, leaving the text renders it again
  const [editing, setEditing] = useState(false);
  const rendered = data.noteType === "MarkdownNote" && !editing && data.text.trim() !== "";
  return (
    <div className={`ng-note ${selected ? "selected" : ""}`} data-testid={`note-${id}`} style={{ "--note-bg": data.bgcolor ?? "#653", "--note-fg": data.color ?? "#432" } as React.CSSProperties}>
      <NodeResizer isVisible={Boolean(selected)} minWidth={120} minHeight={60} onResizeEnd={() => commitCurrent({ label: "resize note" })} />
      <div className="ng-note-title">{label}</div>
      {rendered ? (
        <div className="ng-note-md nodrag nowheel" data-testid={`note-md-${id}`} title="Double-click to edit" onDoubleClick={(e) => { e.stopPropagation(); setEditing(true); }}>
          <Markdown source={data.text} />
        </div>
      ) : (
      <textarea
        className="ng-note-text nodrag nowheel"
        aria-label={label}
        value={data.text}
        placeholder={data.noteType === "MarkdownNote" ? "Markdown…" : "Note…"}
        spellCheck={false}
        onChange={(e) => setNoteText(id, e.target.value)}
        autoFocus={editing}
        onFocus={() => setEditing(true)}
        onBlur={() => setEditing(false)}
        onKeyDown={(e) => e.stopPropagation()}
      />
      )}
    </div>
  );
});
