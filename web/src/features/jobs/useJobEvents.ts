import { useEffect, useMemo, useSyncExternalStore } from "react";
import { ApiError, api, unwrap } from "../../lib/api/client";
import eventTypes from "../../lib/api/event-types.json";
import { apiHref } from "../../lib/config";
import { JobStream } from "./stream";

async function ticketUrl(jobId: string, after: string | null): Promise<string> {
  const result = await api.POST("/jobs/{job_id}/events/ticket", {
    params: { path: { job_id: jobId } },
    body: { after: after ?? "" },
  });
  if (result.response.status === 404) throw new ApiError(404, "no such job stream");
  return apiHref(unwrap(result).events_url);
}

/** The job's live event stream, resumed by itself after blips and restarts. */
export function useJobEvents(jobId: string): JobStream {
  const stream = useMemo(
    () => new JobStream(jobId, { ticketUrl, open: (url) => new EventSource(url), eventTypes }),
    [jobId],
  );
  useEffect(() => {
    stream.start();
    return () => stream.stop();
  }, [stream]);
  useSyncExternalStore(stream.subscribe, stream.snapshot);
  return stream;
}
