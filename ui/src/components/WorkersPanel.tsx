// The Workers tab: GET /v1/cluster polled while the tab is open — each worker's device, the model files
// it holds, its current job and its throughput. One worker on a single server; one per Ray actor with --ray.
import { useEffect, useState } from "react";
import { api, Cluster, ClusterWorker } from "../lib/api";

const POLL_MS = 2000;

const gib = (bytes: unknown) => (typeof bytes === "number" ? `${(bytes / 2 ** 30).toFixed(1)} GiB` : "");

/** One line of numbers about a worker: jobs run, throughput while busy, device memory. */
export function workerSummary(w: ClusterWorker): string {
  const parts = [`${w.jobs_run ?? 0} job${w.jobs_run === 1 ? "" : "s"}`];
  if (w.jobs_per_busy_second) parts.push(`${(w.jobs_per_busy_second * 60).toFixed(1)} jobs/min busy`);
  const dm = w.device_manager ?? {};
  if (typeof dm.vram_total === "number" && typeof dm.vram_free === "number")
    parts.push(`${gib(dm.vram_total - dm.vram_free)} / ${gib(dm.vram_total)} used`);
  return parts.join(" · ");
}

function WorkerRow({ worker }: { worker: ClusterWorker }) {
  const status = !worker.alive ? "error" : worker.current_job ? "running" : "idle";
  const device = [worker.device, worker.device_manager?.name].filter(Boolean).join(" · ");
  return (
    <div className="ng-job" data-testid="worker">
      <div className="ng-job-main">
        <span className={`ng-chip ng-chip-${status}`}>{worker.alive ? (worker.current_job ? "busy" : "idle") : "lost"}</span>
        <span className="ng-job-id" title={worker.host ? `${worker.host}, pid ${worker.pid}` : `pid ${worker.pid}`}>{worker.name}</span>
        <span className="ng-spacer" />
        <span className="ng-job-time" data-testid="worker-device">{device}</span>
      </div>
      <div className="ng-worker-line" data-testid="worker-summary">{workerSummary(worker)}</div>
      {worker.current_job && <div className="ng-worker-line">running {worker.current_job.slice(0, 8)}</div>}
      <div className="ng-worker-line" data-testid="worker-models">
        {worker.models?.length ? worker.models.join(", ") : "no model files loaded"}
      </div>
    </div>
  );
}

export function WorkersPanel() {
  const [cluster, setCluster] = useState<Cluster | null>(null);
  const [error, setError] = useState("");
  useEffect(() => {
    let live = true;
    const poll = async () => {
      try {
        const reply = await api.cluster();
        if (live) (setCluster(reply), setError(""));
      } catch (e) {
        if (live) setError(String((e as Error).message ?? e));
      }
    };
    void poll();
    const timer = setInterval(poll, POLL_MS);
    return () => ((live = false), clearInterval(timer));
  }, []);
  if (error) return <div className="ng-empty-note">Workers unavailable: {error}</div>;
  if (!cluster) return <div className="ng-empty-note">Asking the server…</div>;
  return (
    <>
      <div className="ng-panel-head">
        <span data-testid="cluster-backend">
          {cluster.backend}
          {cluster.address ? ` · ${cluster.address}` : ""}
        </span>
        {cluster.deaths ? <span>{cluster.deaths} lost</span> : null}
      </div>
      {cluster.workers.map((w) => (
        <WorkerRow key={w.name} worker={w} />
      ))}
    </>
  );
}
