/** Stats: the overview's counts and every distribution as a chart, across everything or
 * for one dataset. */
import { useQueries, useQuery } from "@tanstack/react-query";
import { useParams } from "react-router";
import { type Bar, BarChart } from "../../components/BarChart";
import { Card, ErrorNote } from "../../components/ui";
import { api, unwrap } from "../../lib/api/client";
import { nameOf, type Taxonomies, useTaxonomies } from "../../lib/taxonomies";

const KINDS = ["scene_type", "style", "material", "category", "colour", "confidence"] as const;
const TITLES: Record<(typeof KINDS)[number], string> = {
  scene_type: "Scene types",
  style: "Styles",
  material: "Materials",
  category: "Object categories",
  colour: "Palette colours",
  confidence: "Object confidence",
};

export function StatsPage() {
  const { datasetId } = useParams();
  const taxonomies = useTaxonomies();
  const overview = useQuery({
    queryKey: ["stats-overview"],
    queryFn: async () => unwrap(await api.GET("/stats/overview")),
    refetchInterval: 10_000,
  });
  const distributions = useQueries({
    queries: KINDS.map((kind) => ({
      queryKey: ["stats", kind, datasetId ?? ""],
      queryFn: async () =>
        unwrap(await api.GET("/stats/distribution/{kind}", { params: { path: { kind }, query: { dataset_id: datasetId } } })),
      refetchInterval: 10_000,
    })),
  });
  const o = overview.data;
  return (
    <>
      {!datasetId && <h1>Stats</h1>}
      <ErrorNote error={overview.error} />
      {o && (
        <Card title="Overview (all datasets)">
          <dl className="overview" data-testid="overview">
            <div><dt>Datasets</dt><dd>{o.datasets}</dd></div>
            <div><dt>Scenes</dt><dd>{o.scenes}</dd></div>
            <div><dt>Objects</dt><dd>{o.objects}</dd></div>
            <div><dt>Corrected</dt><dd>{o.corrected_objects}</dd></div>
            <div><dt>Reviews</dt><dd>{o.reviews}</dd></div>
            <div><dt>Mean confidence</dt><dd>{o.avg_object_confidence == null ? "—" : o.avg_object_confidence.toFixed(2)}</dd></div>
          </dl>
          <div className="row">
            <BarChart title="Scenes by status" bars={Object.entries(o.scenes_by_status).map(([k, v]) => ({ key: k, label: k, value: v, color: statusColor(k) }))} />
            <BarChart title="Jobs by status" bars={Object.entries(o.jobs_by_status).map(([k, v]) => ({ key: k, label: k, value: v, color: statusColor(k) }))} />
          </div>
        </Card>
      )}
      <Card title={datasetId ? "Distributions (this dataset)" : "Distributions"}>
        <div className="charts">
          {KINDS.map((kind, i) => (
            <BarChart key={kind} title={TITLES[kind]} bars={bars(kind, distributions[i]?.data ?? [], taxonomies.data)} max={kind === "confidence" ? 10 : 12} />
          ))}
        </div>
      </Card>
    </>
  );
}

function bars(kind: (typeof KINDS)[number], buckets: { key: string; count: number; share: number }[], t: Taxonomies | undefined): Bar[] {
  return buckets.map((b) => ({
    key: b.key,
    label:
      kind === "colour" ? b.key : kind === "confidence" ? `${b.key}–${(Number(b.key) + 0.1).toFixed(1)}` : nameOf(t?.[kind as keyof Taxonomies], b.key),
    value: b.count,
    share: b.share,
    color: kind === "colour" ? b.key : undefined,
  }));
}

function statusColor(status: string): string {
  return { failed: "#d64545", partial: "#e0a020", ok: "#3a9d5d", succeeded: "#3a9d5d", running: "#3f7fd6" }[status] ?? "#8a94a6";
}
