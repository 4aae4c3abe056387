import { useQuery } from "@tanstack/react-query";
import { api, unwrap } from "./api/client";
import type { TermOut } from "./api/types";

export type Taxonomies = Record<"scene_type" | "style" | "material" | "category", TermOut[]>;

/** The vocabularies (scene types, styles, materials, categories), fetched once. */
export function useTaxonomies() {
  return useQuery({
    queryKey: ["taxonomies"],
    queryFn: async () => unwrap(await api.GET("/taxonomies")) as Taxonomies,
    staleTime: Infinity,
  });
}

export function nameOf(terms: TermOut[] | undefined, code: string | null | undefined): string {
  if (!code) return "—";
  return terms?.find((t) => t.code === code)?.name ?? code;
}
