import { useInfiniteQuery, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, unwrap } from "../../lib/api/client";
import type { DatasetOut } from "../../lib/api/types";

export function useDatasets() {
  return useInfiniteQuery({
    queryKey: ["datasets"],
    initialPageParam: undefined as string | undefined,
    queryFn: async ({ pageParam }) =>
      unwrap(await api.GET("/datasets", { params: { query: { limit: 50, cursor: pageParam } } })),
    getNextPageParam: (page) => page.next_cursor ?? undefined,
  });
}

export function useDataset(datasetId: string) {
  return useQuery({
    queryKey: ["dataset", datasetId],
    queryFn: async () =>
      unwrap(await api.GET("/datasets/{dataset_id}", { params: { path: { dataset_id: datasetId } } })),
  });
}

export function useCreateDataset() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: async (body: { name: string; description: string }) =>
      unwrap(await api.POST("/datasets", { body })) as DatasetOut,
    onSuccess: () => client.invalidateQueries({ queryKey: ["datasets"] }),
  });
}

export function useJobs(datasetId: string) {
  return useQuery({
    queryKey: ["jobs", datasetId],
    queryFn: async () =>
      unwrap(await api.GET("/jobs", { params: { query: { dataset_id: datasetId, limit: 20 } } })),
    refetchInterval: 5_000,
  });
}
