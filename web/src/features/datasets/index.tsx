/** Datasets: the list with counts, and a form to create one. */
import { useState, type FormEvent } from "react";
import { Link, NavLink, Outlet, useNavigate, useParams } from "react-router";
import { Card, ErrorNote, Loading, Progress, StatusBadge } from "../../components/ui";
import { short, when } from "../../lib/format";
import { useCreateDataset, useDataset, useDatasets, useJobs } from "./api";

export function DatasetsPage() {
  const datasets = useDatasets();
  const items = datasets.data?.pages.flatMap((p) => p.items) ?? [];
  return (
    <main>
      <h1>Datasets</h1>
      <CreateDataset />
      <Card title="All datasets">
        <ErrorNote error={datasets.error} />
        {datasets.isPending ? (
          <Loading />
        ) : (
          <table className="table" data-testid="datasets">
            <thead>
              <tr>
                <th>Name</th>
                <th>Scenes</th>
                <th>Created</th>
                <th>By</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {items.map((d) => (
                <tr key={d.dataset_id} data-dataset={d.dataset_id}>
                  <td>
                    <Link to={`/datasets/${d.dataset_id}`}>{d.name}</Link>
                    {d.description && <div className="muted small">{d.description}</div>}
                  </td>
                  <td className="num">{d.scene_count}</td>
                  <td>{when(d.created_at)}</td>
                  <td>{d.created_by}</td>
                  <td className="actions">
                    <Link to={`/datasets/${d.dataset_id}/upload`}>upload</Link>
                    <Link to={`/datasets/${d.dataset_id}/review`}>review</Link>
                  </td>
                </tr>
              ))}
              {items.length === 0 && (
                <tr>
                  <td colSpan={5} className="muted">
                    No datasets yet: create one above.
                  </td>
                </tr>
              )}
            </tbody>
          </table>
        )}
        {datasets.hasNextPage && (
          <button type="button" onClick={() => datasets.fetchNextPage()}>
            More
          </button>
        )}
      </Card>
    </main>
  );
}

function CreateDataset() {
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const create = useCreateDataset();
  const navigate = useNavigate();
  function submit(event: FormEvent) {
    event.preventDefault();
    create.mutate(
      { name, description },
      {
        onSuccess: (d) => {
          setName("");
          setDescription("");
          if ("dataset_id" in d) navigate(`/datasets/${d.dataset_id}/upload`);
        },
      },
    );
  }
  return (
    <Card title="New dataset">
      <form className="row" onSubmit={submit}>
        <input name="name" placeholder="Name" value={name} onChange={(e) => setName(e.target.value)} required maxLength={200} />
        <input name="description" placeholder="Description (optional)" value={description} onChange={(e) => setDescription(e.target.value)} maxLength={2000} />
        <button type="submit" disabled={create.isPending}>
          Create
        </button>
      </form>
      <ErrorNote error={create.error} />
    </Card>
  );
}

/** One dataset: its name, tabs to its pages, and its jobs. */
export function DatasetLayout() {
  const { datasetId = "" } = useParams();
  const dataset = useDataset(datasetId);
  return (
    <main>
      <p className="crumbs">
        <Link to="/">Datasets</Link> /
      </p>
      <h1>{dataset.data?.name ?? short(datasetId)}</h1>
      <ErrorNote error={dataset.error} />
      <nav className="tabs">
        <NavLink to="scenes">Scenes</NavLink>
        <NavLink to="upload">Upload</NavLink>
        <NavLink to="review">Review queue</NavLink>
        <NavLink to="jobs">Jobs</NavLink>
        <NavLink to="stats">Stats</NavLink>
      </nav>
      <Outlet />
    </main>
  );
}

export function JobsPage() {
  const { datasetId = "" } = useParams();
  const jobs = useJobs(datasetId);
  return (
    <Card title="Jobs">
      <ErrorNote error={jobs.error} />
      <table className="table">
        <thead>
          <tr>
            <th>Job</th>
            <th>Status</th>
            <th>Progress</th>
            <th>ok / partial / failed</th>
            <th>Started</th>
          </tr>
        </thead>
        <tbody>
          {(jobs.data?.items ?? []).map((j) => (
            <tr key={j.job_id}>
              <td>
                <Link to={`/jobs/${j.job_id}`}>{short(j.job_id)}</Link>
              </td>
              <td>
                <StatusBadge status={j.status} />
              </td>
              <td>
                <Progress value={j.progress} />
              </td>
              <td className="num">
                {j.ok} / {j.partial} / {j.failed} of {j.total}
              </td>
              <td>{when(j.created_at)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </Card>
  );
}
