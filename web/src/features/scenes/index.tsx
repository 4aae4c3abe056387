/** Scenes: a grid of thumbnails with status badges, filtered by scene type, style,
 * material, category and confidence. Filters live in the URL, so a view can be shared. */
import { useInfiniteQuery } from "@tanstack/react-query";
import { Link, useParams, useSearchParams } from "react-router";
import { ErrorNote, Loading, StatusBadge } from "../../components/ui";
import { api, unwrap } from "../../lib/api/client";
import type { TermOut } from "../../lib/api/types";
import { conf } from "../../lib/format";
import { nameOf, useTaxonomies } from "../../lib/taxonomies";

const FILTERS = ["status", "scene_type", "style", "material", "category", "min_confidence"] as const;

export function ScenesPage() {
  const { datasetId = "" } = useParams();
  const [search, setSearch] = useSearchParams();
  const taxonomies = useTaxonomies();
  const filters = Object.fromEntries(FILTERS.map((f) => [f, search.get(f) || undefined])) as Record<(typeof FILTERS)[number], string | undefined>;
  const scenes = useInfiniteQuery({
    queryKey: ["scenes", datasetId, filters],
    initialPageParam: undefined as string | undefined,
    queryFn: async ({ pageParam }) =>
      unwrap(
        await api.GET("/datasets/{dataset_id}/scenes", {
          params: {
            path: { dataset_id: datasetId },
            query: {
              limit: 48,
              cursor: pageParam,
              status: filters.status,
              scene_type: filters.scene_type,
              style: filters.style,
              material: filters.material,
              category: filters.category,
              min_confidence: filters.min_confidence ? Number(filters.min_confidence) : undefined,
            },
          },
        }),
      ),
    getNextPageParam: (page) => page.next_cursor ?? undefined,
    refetchInterval: 10_000,
  });
  const items = scenes.data?.pages.flatMap((p) => p.items) ?? [];

  function set(name: string, value: string) {
    const next = new URLSearchParams(search);
    if (value) next.set(name, value);
    else next.delete(name);
    setSearch(next, { replace: true });
  }

  const select = (name: string, terms: TermOut[] | undefined, label: string) => (
    <label>
      {label}
      <select name={name} value={search.get(name) ?? ""} onChange={(e) => set(name, e.target.value)}>
        <option value="">any</option>
        {terms?.map((t) => (
          <option key={t.code} value={t.code}>
            {t.name}
          </option>
        ))}
      </select>
    </label>
  );

  return (
    <>
      <form className="filters" onSubmit={(e) => e.preventDefault()}>
        <label>
          Status
          <select name="status" value={search.get("status") ?? ""} onChange={(e) => set("status", e.target.value)}>
            <option value="">any</option>
            {["ok", "partial", "failed", "running", "queued", "registered"].map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </label>
        {select("scene_type", taxonomies.data?.scene_type, "Scene type")}
        {select("style", taxonomies.data?.style, "Style")}
        {select("material", taxonomies.data?.material, "Material")}
        {select("category", taxonomies.data?.category, "Category")}
        <label>
          Min. confidence {search.get("min_confidence") ?? "0"}
          <input
            type="range"
            name="min_confidence"
            min={0}
            max={1}
            step={0.05}
            value={search.get("min_confidence") ?? "0"}
            onChange={(e) => set("min_confidence", e.target.value === "0" ? "" : e.target.value)}
          />
        </label>
      </form>
      <ErrorNote error={scenes.error} />
      {scenes.isPending ? (
        <Loading what="Loading scenes" />
      ) : (
        <ul className="grid" data-testid="scene-grid">
          {items.map((s) => (
            <li key={s.scene_id} className={`tile status-${s.status}`} data-scene={s.scene_id} data-status={s.status}>
              <Link to={`/scenes/${s.scene_id}`}>
                {s.image_url ? <img src={s.image_url} alt={s.caption ?? "scene"} loading="lazy" /> : <div className="noimg" />}
                <div className="tile-meta">
                  <StatusBadge status={s.status} />
                  <span>{nameOf(taxonomies.data?.scene_type, s.scene_type)}</span>
                  <span className="muted small">
                    {s.object_count} objects · conf {conf(s.avg_conf)}
                  </span>
                </div>
              </Link>
            </li>
          ))}
          {items.length === 0 && <li className="muted">No scene matches.</li>}
        </ul>
      )}
      {scenes.hasNextPage && (
        <button type="button" onClick={() => scenes.fetchNextPage()}>
          More scenes
        </button>
      )}
    </>
  );
}
