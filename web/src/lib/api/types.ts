/** Names for the API's shapes, all generated from its OpenAPI document (schema.d.ts is
 * written by `just web-types`; `just test` fails when it is stale). Never written by hand. */
import type { components, paths } from "./schema";

type S = components["schemas"];
export type { paths };
export type DatasetOut = S["DatasetOut"];
export type JobOut = S["JobOut"];
export type JobIn = S["JobIn"];
export type StageFlags = S["StageFlags"];
export type SceneOut = S["SceneOut"];
export type SceneSummary = S["SceneSummary"];
export type ObjectOut = S["ObjectOut"];
export type ObjectPatch = S["ObjectPatch"];
export type ReviewIn = S["ReviewIn"];
export type QueueItem = S["QueueItem"];
export type QueuePage = S["QueuePage"];
export type Overview = S["Overview"];
export type Bucket = S["Bucket"];
export type Upload = S["Upload"];
export type TermOut = S["TermOut"];
export type Ticket = S["Ticket"];
export type MeOut = S["MeOut"];
export type Verdict = ReviewIn["verdict"];
