/** Job: live progress over SSE, per-stage timings, ok/partial/failed counts, errors. */
import { useQuery } from "@tanstack/react-query";
import { Link, useParams } from "react-router";
import { Card, ErrorNote, Progress, StatusBadge } from "../../components/ui";
import { api, unwrap } from "../../lib/api/client";
import { ms, short } from "../../lib/format";
import { quantile } from "./events";
import { useJobEvents } from "./useJobEvents";

export function JobPage() {
  const { jobId = "" } = useParams();
  const stream = useJobEvents(jobId);
  const log = stream.log;
  const job = useQuery({
    queryKey: ["job", jobId],
    queryFn: async () => unwrap(await api.GET("/jobs/{job_id}", { params: { path: { job_id: jobId } } })),
    refetchInterval: stream.status === "ended" ? false : 5_000,
  });
  const counts = log.counts();
  const total = log.total || job.data?.total || 0;
  const finished = counts.ok + counts.partial + counts.failed;
  const stages = [...log.stageMs.entries()].sort(([a], [b]) => a.localeCompare(b));
  return (
    <main>
      <p className="crumbs">
        <Link to="/">Datasets</Link> /{" "}
        {job.data && <Link to={`/datasets/${job.data.dataset_id}/jobs`}>dataset</Link>}
      </p>
      <h1>
        Job {short(jobId)} <StatusBadge status={log.done?.status ?? job.data?.status ?? "queued"} />
      </h1>
      <ErrorNote error={job.error} />
      <Card
        title="Progress"
        actions={
          <span className={`conn conn-${stream.status}`} data-testid="stream-status" data-status={stream.status}>
            {stream.status}
            {stream.reconnects > 0 ? ` · ${stream.reconnects} reconnect${stream.reconnects > 1 ? "s" : ""}` : ""}
          </span>
        }
      >
        <Progress value={total ? finished / total : 0} label="job progress" />
        <p className="counts" data-testid="counts">
          <span>{finished}/{total} scenes</span>
          <span className="tone-green">ok {counts.ok}</span>
          <span className="tone-amber">partial {counts.partial}</span>
          <span className="tone-red">failed {counts.failed}</span>
          <span>running {counts.running}</span>
          <span>queued {counts.queued}</span>
        </p>
        {log.done && job.data && (
          <p>
            <Link to={`/datasets/${job.data.dataset_id}/scenes`}>See the scenes</Link> ·{" "}
            <Link to={`/datasets/${job.data.dataset_id}/review`}>Review queue</Link>
          </p>
        )}
      </Card>
      <Card title="Stages">
        <table className="table" data-testid="stages">
          <thead>
            <tr>
              <th>Stage</th>
              <th className="num">Runs</th>
              <th className="num">p50</th>
              <th className="num">p95</th>
            </tr>
          </thead>
          <tbody>
            {stages.map(([stage, values]) => (
              <tr key={stage}>
                <td>{stage}</td>
                <td className="num">{values.length}</td>
                <td className="num">{ms(quantile(values, 0.5))}</td>
                <td className="num">{ms(quantile(values, 0.95))}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </Card>
      {log.errors.length > 0 && (
        <Card title={`Errors (${log.errors.length})`}>
          <ul className="errors">
            {log.errors.map((e) => (
              <li key={e.id}>
                <Link to={`/scenes/${e.sceneId}`}>{short(e.sceneId)}</Link> attempt {e.attempt}
                {e.stage ? ` (${e.stage})` : ""}: {e.error} {e.willRetry ? <em>— will retry</em> : <strong>— final</strong>}
              </li>
            ))}
          </ul>
        </Card>
      )}
      <Card title={`Events (${log.events.length})`}>
        <details>
          <summary>Every event received, in stream order</summary>
          <ol className="eventlog" data-testid="eventlog" data-repeats={log.repeats}>
            {log.events.map((e) => (
              <li key={e.id} data-entry-id={e.id}>
                <code>{e.id}</code> {e.type}
              </li>
            ))}
          </ol>
        </details>
      </Card>
    </main>
  );
}
