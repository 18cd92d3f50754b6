// Queue (running, pending, cancel, clear), history and gallery. It sits beside the canvas, never over it.
import { useEffect, useMemo, useState } from "react";
import { Job, jobId, viewUrl } from "../lib/api";
import { runtime, jobImages, GalleryItem } from "../state/runtime";
import { useStore } from "../state/store";
import { cancelJob, clearQueue, interrupt } from "../state/run";
import { loadDocument } from "../state/editor";
import { WorkersPanel } from "./WorkersPanel";

const when = (t: unknown) => {
  const n = Number(t);
  if (!n) return "";
  const d = new Date(n > 1e12 ? n : n * 1000);
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
};

const duration = (j: Job) => {
  const a = Number(j.started);
  const b = Number(j.finished);
  return a && b ? `${(b - a).toFixed(1)} s` : "";
};

function JobRow({ job, kind }: { job: Job; kind: "running" | "pending" | "done" }) {
  const id = jobId(job);
  const thumbs = kind === "done" ? jobImages(job).slice(0, 3) : [];
  const status = String(job.status ?? kind);
  return (
    <div className={`ng-job ng-job-${status}`} data-testid={`job-${status}`}>
      <div className="ng-job-main">
        <span className={`ng-chip ng-chip-${status}`}>{status}</span>
        <span className="ng-job-id" title={id}>{id.slice(0, 8)}</span>
        <span className="ng-job-time">{kind === "done" ? duration(job) || when(job.finished) : when(job.created)}</span>
        <span className="ng-spacer" />
        {kind === "running" && (
          <button className="ng-btn ng-btn-small" onClick={() => void interrupt()} title="Interrupt">Stop</button>
        )}
        {kind === "pending" && (
          <button className="ng-btn ng-btn-small" onClick={() => void cancelJob(id)} title="Remove from the queue" data-testid="cancel-job">✕</button>
        )}
        {kind === "done" && job.workflow && (
          <button className="ng-btn ng-btn-small" title="Load this job's workflow" onClick={() => loadDocument(job.workflow!, `job ${job.number ?? id.slice(0, 6)}`)}>Load</button>
        )}
      </div>
      {thumbs.length > 0 && (
        <div className="ng-job-thumbs">
          {thumbs.map((t, k) => (
            <img key={k} src={viewUrl(t.image)} alt={t.image.filename} onClick={() => runtime.set({ lightbox: t.image })} />
          ))}
        </div>
      )}
      {kind === "done" && Array.isArray(job.errors) && job.errors.length > 0 && (
        <div className="ng-job-error">{String((job.errors[0] as { message?: string; exception_message?: string }).message ?? (job.errors[0] as { exception_message?: string }).exception_message ?? "")}</div>
      )}
    </div>
  );
}

export function SidePanel() {
  const [tab, setTab] = useState<"queue" | "history" | "gallery" | "workers">("queue");
  const running = useStore(runtime, (s) => s.running);
  const pending = useStore(runtime, (s) => s.pending);
  const history = useStore(runtime, (s) => s.history);
  const gallery = useStore(runtime, (s) => s.gallery);
  const all = useGallery(gallery, history);
  return (
    <aside className="ng-panel" aria-label="Queue and results">
      <div className="ng-tabs" role="tablist">
        <button role="tab" className={tab === "queue" ? "active" : ""} onClick={() => setTab("queue")} data-testid="tab-queue">
          Queue {running.length + pending.length > 0 && <span className="ng-count">{running.length + pending.length}</span>}
        </button>
        <button role="tab" className={tab === "history" ? "active" : ""} onClick={() => setTab("history")} data-testid="tab-history">
          History
        </button>
        <button role="tab" className={tab === "gallery" ? "active" : ""} onClick={() => setTab("gallery")} data-testid="tab-gallery">
          Gallery {all.length > 0 && <span className="ng-count">{all.length}</span>}
        </button>
        <button role="tab" className={tab === "workers" ? "active" : ""} onClick={() => setTab("workers")} data-testid="tab-workers">
          Workers
        </button>
      </div>
      <div className="ng-panel-body">
        {tab === "queue" && (
          <>
            <div className="ng-panel-head">
              <span>Running</span>
            </div>
            {running.length ? running.map((j) => <JobRow key={jobId(j)} job={j} kind="running" />) : <div className="ng-empty-note">Nothing running</div>}
            <div className="ng-panel-head">
              <span>Pending</span>
              <button className="ng-btn ng-btn-small" onClick={() => void clearQueue()} disabled={!pending.length} data-testid="clear-queue">Clear</button>
            </div>
            {pending.length ? pending.map((j) => <JobRow key={jobId(j)} job={j} kind="pending" />) : <div className="ng-empty-note">The queue is empty</div>}
          </>
        )}
        {tab === "history" && (history.length ? history.map((j) => <JobRow key={jobId(j)} job={j} kind="done" />) : <div className="ng-empty-note">No finished jobs yet</div>)}
        {tab === "workers" && <WorkersPanel />}
        {tab === "gallery" &&
          (all.length ? (
            <div className="ng-gallery" data-testid="gallery">
              {all.map((g, k) => (
                <img key={`${g.image.filename}-${k}`} src={viewUrl(g.image)} alt={g.image.filename} onClick={() => runtime.set({ lightbox: g.image })} />
              ))}
            </div>
          ) : (
            <div className="ng-empty-note">Images from your runs appear here</div>
          ))}
      </div>
    </aside>
  );
}

/** This session's images first, then the history's others: a run adds to the count, never replaces it. */
function useGallery(gallery: GalleryItem[], history: Job[]): GalleryItem[] {
  return useMemo(() => {
    const key = (g: GalleryItem) => `${g.image.type ?? ""}/${g.image.subfolder ?? ""}/${g.image.filename}`;
    const seen = new Set(gallery.map(key));
    return [...gallery, ...history.flatMap(jobImages).filter((g) => !seen.has(key(g)) && (seen.add(key(g)), true))];
  }, [gallery, history]);
}

export function Lightbox() {
  const img = useStore(runtime, (s) => s.lightbox);
  useEffect(() => {
    if (!img) return;
    const onKey = (e: KeyboardEvent) => {
      if (e.key === "Escape") {
        e.stopPropagation();
        runtime.set({ lightbox: null });
      }
    };
    addEventListener("keydown", onKey, true);
    return () => removeEventListener("keydown", onKey, true);
  }, [img]);
  if (!img) return null;
  return (
    <div className="ng-lightbox" onClick={() => runtime.set({ lightbox: null })}>
      <img src={viewUrl(img)} alt={img.filename} />
      <div className="ng-lightbox-caption">{img.filename}</div>
    </div>
  );
}

export function Toasts() {
  const toasts = useStore(runtime, (s) => s.toasts);
  return (
    <div className="ng-toasts" aria-live="polite">
      {toasts.map((t) => (
        <div key={t.id} className={`ng-toast ng-toast-${t.kind}`} data-testid="toast">
          {t.text}
        </div>
      ))}
    </div>
  );
}
