import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, unwrap } from "../../lib/api/client";
import type { ObjectOut, SceneOut, Verdict } from "../../lib/api/types";
import type { Fields } from "./history";

export const sceneKey = (sceneId: string) => ["scene", sceneId] as const;
export const reviewsKey = (sceneId: string) => ["reviews", sceneId] as const;

export function useScene(sceneId: string) {
  return useQuery({
    queryKey: sceneKey(sceneId),
    queryFn: async () => unwrap(await api.GET("/scenes/{scene_id}", { params: { path: { scene_id: sceneId } } })),
    staleTime: 60_000,
  });
}

export function useReviews(sceneId: string) {
  return useQuery({
    queryKey: reviewsKey(sceneId),
    queryFn: async () => unwrap(await api.GET("/reviews", { params: { query: { scene_id: sceneId } } })),
    staleTime: 60_000,
  });
}

/** The object as the UI shows it after ``fields`` apply (the optimistic view). */
function applied(obj: ObjectOut, fields: Fields): ObjectOut {
  return {
    ...obj,
    ...(fields.category !== undefined ? { category: fields.category } : {}),
    ...(fields.bbox !== undefined ? { bbox: [...fields.bbox] } : {}),
    ...(fields.materials !== undefined
      ? { materials: fields.materials.map((code) => ({ code, score: 1, model: "review" })) }
      : {}),
  };
}

/** Corrections: shown at once (optimistic), sent as PATCHes, rolled back if refused. */
export function useCorrections(sceneId: string) {
  const client = useQueryClient();
  return useMutation({
    mutationFn: async (edits: { objectId: string; fields: Fields }[]) =>
      Promise.all(
        edits.map(async ({ objectId, fields }) =>
          unwrap(await api.PATCH("/objects/{object_id}", { params: { path: { object_id: objectId } }, body: fields })),
        ),
      ),
    onMutate: async (edits) => {
      await client.cancelQueries({ queryKey: sceneKey(sceneId) });
      const before = client.getQueryData<SceneOut>(sceneKey(sceneId));
      if (before) {
        const byId = new Map(edits.map((e) => [e.objectId, e.fields]));
        client.setQueryData<SceneOut>(sceneKey(sceneId), {
          ...before,
          objects: before.objects.map((o) => {
            const fields = byId.get(o.object_id);
            return fields ? applied(o, fields) : o;
          }),
        });
      }
      return { before };
    },
    onError: (_error, _edits, context) => {
      if (context?.before) client.setQueryData(sceneKey(sceneId), context.before);
    },
    onSuccess: (results) => {
      // Take the server's view of every object it answered for (200, not a 202).
      const fresh = new Map(results.filter((r): r is ObjectOut => "object_id" in r).map((r) => [r.object_id, r]));
      client.setQueryData<SceneOut>(sceneKey(sceneId), (scene) =>
        scene ? { ...scene, objects: scene.objects.map((o) => fresh.get(o.object_id) ?? o) } : scene,
      );
    },
  });
}

export function useVerdicts(sceneId: string) {
  const client = useQueryClient();
  return useMutation({
    mutationFn: async (items: { objectId: string | null; verdict: Verdict; note: string }[]) =>
      Promise.all(
        items.map(async (i) =>
          unwrap(await api.POST("/reviews", { body: { scene_id: sceneId, object_id: i.objectId, verdict: i.verdict, note: i.note } })),
        ),
      ),
    onSettled: () => {
      void client.invalidateQueries({ queryKey: reviewsKey(sceneId) });
      void client.invalidateQueries({ queryKey: ["review-queue"] });
    },
  });
}
