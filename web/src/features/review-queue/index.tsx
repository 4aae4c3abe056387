/** Review queue: a dataset's unreviewed objects in the order a reviewer's time helps most
 * (lowest confidence, then detector disagreement, then the closest material call).
 * A verdict takes the object out of the queue. */
import { useInfiniteQuery, useMutation, useQueryClient } from "@tanstack/react-query";
import { useEffect, useRef, useState } from "react";
import { Link, useParams } from "react-router";
import { Card, ErrorNote, Kbd, Loading } from "../../components/ui";
import { api, unwrap } from "../../lib/api/client";
import type { QueueItem, Verdict } from "../../lib/api/types";
import { conf } from "../../lib/format";
import { nameOf, useTaxonomies } from "../../lib/taxonomies";

export function ReviewQueuePage() {
  const { datasetId = "" } = useParams();
  const client = useQueryClient();
  const taxonomies = useTaxonomies();
  const [gone, setGone] = useState<ReadonlySet<string>>(new Set());
  const [cursor, setCursor] = useState(0);
  const queue = useInfiniteQuery({
    queryKey: ["review-queue", datasetId],
    initialPageParam: undefined as string | undefined,
    queryFn: async ({ pageParam }) =>
      unwrap(
        await api.GET("/datasets/{dataset_id}/review-queue", {
          params: { path: { dataset_id: datasetId }, query: { limit: 50, cursor: pageParam } },
        }),
      ),
    getNextPageParam: (page) => page.next_cursor ?? undefined,
  });
  const verdict = useMutation({
    mutationFn: async ({ item, verdict }: { item: QueueItem; verdict: Verdict }) =>
      unwrap(await api.POST("/reviews", { body: { scene_id: item.scene_id, object_id: item.object_id, verdict, note: "" } })),
    onError: (_e, { item }) => setGone((old) => new Set([...old].filter((id) => id !== item.object_id))),
    onSettled: () => client.invalidateQueries({ queryKey: ["reviews"] }),
  });
  const items = (queue.data?.pages.flatMap((p) => p.items) ?? []).filter((i) => !gone.has(i.object_id));
  const remaining = (queue.data?.pages[0]?.remaining ?? 0) - gone.size;

  function decide(item: QueueItem | undefined, v: Verdict) {
    if (!item) return;
    setGone((old) => new Set([...old, item.object_id]));
    verdict.mutate({ item, verdict: v });
  }

  const keys = useRef<(e: KeyboardEvent) => void>(() => undefined);
  keys.current = (e: KeyboardEvent) => {
    if (/^(INPUT|TEXTAREA|SELECT)$/.test((e.target as HTMLElement).tagName) || e.ctrlKey || e.metaKey) return;
    if (e.key === "j" || e.key === "ArrowDown") setCursor((c) => Math.min(items.length - 1, c + 1));
    else if (e.key === "k" || e.key === "ArrowUp") setCursor((c) => Math.max(0, c - 1));
    else if (e.key === "a") decide(items[cursor], "approve");
    else if (e.key === "r") decide(items[cursor], "reject");
    else return;
    e.preventDefault();
  };
  useEffect(() => {
    const listener = (e: KeyboardEvent) => keys.current(e);
    window.addEventListener("keydown", listener);
    return () => window.removeEventListener("keydown", listener);
  }, []);
  useEffect(() => {
    if (cursor >= items.length && items.length) setCursor(items.length - 1);
  }, [cursor, items.length]);

  return (
    <Card
      title={`Review queue (${Math.max(0, remaining)} left)`}
      actions={
        <span className="muted small">
          <Kbd>j</Kbd>/<Kbd>k</Kbd> move · <Kbd>a</Kbd> approve · <Kbd>r</Kbd> reject
        </span>
      }
    >
      <ErrorNote error={queue.error ?? verdict.error} />
      {queue.isPending ? (
        <Loading />
      ) : (
        <ol className="queue" data-testid="review-queue">
          {items.map((item, i) => (
            <li key={item.object_id} data-object={item.object_id} className={i === cursor ? "current" : ""} onClick={() => setCursor(i)}>
              {item.thumb_url ? <img src={item.thumb_url} alt={item.category} loading="lazy" /> : <div className="noimg" />}
              <div className="queue-meta">
                <span>
                  <strong>{nameOf(taxonomies.data?.category, item.category)}</strong> · conf {conf(item.confidence)}
                </span>
                {item.disagreement && (
                  <span className="disagree" title="YOLO and GroundingDINO disagree">
                    {item.detect_category} ≠ {item.label_category}
                  </span>
                )}
                <span className="muted small">
                  materials {item.materials.slice(0, 2).map((m) => `${m.code} ${m.score.toFixed(2)}`).join(" / ") || "—"}
                  {item.material_margin != null ? ` · margin ${conf(item.material_margin)}` : ""}
                </span>
              </div>
              <div className="queue-actions">
                <button type="button" onClick={() => decide(item, "approve")}>Approve</button>
                <button type="button" onClick={() => decide(item, "reject")}>Reject</button>
                <Link to={`/scenes/${item.scene_id}?object=${item.object_id}`}>open</Link>
              </div>
            </li>
          ))}
          {items.length === 0 && <li className="muted">Nothing waiting for review.</li>}
        </ol>
      )}
      {queue.hasNextPage && (
        <button type="button" onClick={() => queue.fetchNextPage()}>
          More
        </button>
      )}
    </Card>
  );
}
