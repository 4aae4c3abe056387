/** Upload: drop photos; each goes straight to storage through a presigned POST form with its own
 * progress bar; the scenes are registered; then a job can start with the chosen stages. */
import { useMutation } from "@tanstack/react-query";
import { useState, type DragEvent, type FormEvent } from "react";
import { useNavigate, useParams } from "react-router";
import { Card, ErrorNote, Progress } from "../../components/ui";
import { api, unwrap } from "../../lib/api/client";
import type { StageFlags } from "../../lib/api/types";
import { isAccepted, pool, putFile } from "./upload";

interface Item {
  file: File;
  progress: number;
  state: "waiting" | "uploading" | "uploaded" | "registered" | "failed" | "refused";
  error?: string;
  sceneId?: string;
}

const STAGES: (keyof StageFlags)[] = ["scene", "style", "detect", "segment", "label", "depth", "material", "caption", "palette"];

export function UploadPage() {
  const { datasetId = "" } = useParams();
  const [items, setItems] = useState<Item[]>([]);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const registered = items.filter((i) => i.state === "registered" && i.sceneId);

  function add(files: FileList | null) {
    if (!files) return;
    const fresh: Item[] = Array.from(files).map((file) =>
      isAccepted(file.type)
        ? { file, progress: 0, state: "waiting" }
        : { file, progress: 0, state: "refused", error: `${file.type || "unknown type"}: JPEG, PNG or WebP only` },
    );
    setItems((old) => [...old, ...fresh]);
  }

  function update(index: number, change: Partial<Item>) {
    setItems((old) => old.map((item, i) => (i === index ? { ...item, ...change } : item)));
  }

  async function uploadAll() {
    setBusy(true);
    setError(null);
    try {
      const todo = items.map((item, index) => ({ item, index })).filter(({ item }) => item.state === "waiting" || item.state === "failed");
      if (todo.length === 0) return;
      const { uploads } = unwrap(
        await api.POST("/datasets/{dataset_id}/presign", {
          params: { path: { dataset_id: datasetId } },
          body: {
            files: todo.map(({ item }) => ({
              filename: item.file.name.slice(0, 255) || "photo",
              content_type: item.file.type as "image/jpeg",
              size_bytes: item.file.size,
            })),
          },
        }),
      );
      const done: { sceneId: string; filename: string; index: number }[] = [];
      await pool(
        todo.map((t, k) => ({ ...t, upload: uploads[k]! })),
        3,
        async ({ item, index, upload }) => {
          update(index, { state: "uploading", sceneId: upload.scene_id, error: undefined });
          try {
            await putFile(upload, item.file, (progress) => update(index, { progress }));
            update(index, { state: "uploaded", progress: 1 });
            done.push({ sceneId: upload.scene_id, filename: upload.filename, index });
          } catch (e) {
            update(index, { state: "failed", error: String(e) });
          }
        },
      );
      if (done.length) {
        unwrap(
          await api.POST("/datasets/{dataset_id}/register-scenes", {
            params: { path: { dataset_id: datasetId } },
            body: { scenes: done.map((d) => ({ scene_id: d.sceneId, filename: d.filename })) },
          }),
        );
        setItems((old) => old.map((item, i) => (done.some((d) => d.index === i) ? { ...item, state: "registered" } : item)));
      }
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  }

  function drop(event: DragEvent) {
    event.preventDefault();
    add(event.dataTransfer.files);
  }

  return (
    <>
      <Card title="Upload photos">
        <label className="dropzone" onDragOver={(e) => e.preventDefault()} onDrop={drop}>
          Drop room photos here, or choose files
          <input type="file" name="photos" accept="image/jpeg,image/png,image/webp" multiple onChange={(e) => add(e.target.files)} />
        </label>
        <ul className="uploads" data-testid="uploads">
          {items.map((item, i) => (
            <li key={i} data-state={item.state} data-file={item.file.name}>
              <span className="filename">{item.file.name}</span>
              <span className="muted small">{(item.file.size / 1024).toFixed(0)} KB</span>
              <Progress value={item.progress} label={`upload of ${item.file.name}`} />
              <span className={`state state-${item.state}`}>{item.state}</span>
              {item.error && <span className="error small">{item.error}</span>}
            </li>
          ))}
        </ul>
        <button type="button" onClick={uploadAll} disabled={busy || !items.some((i) => i.state === "waiting" || i.state === "failed")}>
          {busy ? "Uploading…" : "Upload"}
        </button>
        <ErrorNote error={error} />
      </Card>
      {registered.length > 0 && <StartJob datasetId={datasetId} sceneIds={registered.map((i) => i.sceneId!)} />}
    </>
  );
}

function StartJob({ datasetId, sceneIds }: { datasetId: string; sceneIds: string[] }) {
  const [stages, setStages] = useState<StageFlags>(() => Object.fromEntries(STAGES.map((s) => [s, true])) as unknown as StageFlags);
  const navigate = useNavigate();
  const start = useMutation({
    mutationFn: async () => unwrap(await api.POST("/jobs", { body: { dataset_id: datasetId, scene_ids: sceneIds, stages, resize_max_px: 1280 } })),
    onSuccess: (job) => navigate("job_id" in job ? `/jobs/${job.job_id}` : `/datasets/${datasetId}/jobs`),
  });
  function submit(event: FormEvent) {
    event.preventDefault();
    start.mutate();
  }
  return (
    <Card title={`Start a job over ${sceneIds.length} new scene${sceneIds.length === 1 ? "" : "s"}`}>
      <form onSubmit={submit}>
        <fieldset className="stages">
          <legend>Stages</legend>
          {STAGES.map((stage) => (
            <label key={stage}>
              <input type="checkbox" name={stage} checked={stages[stage]} onChange={(e) => setStages({ ...stages, [stage]: e.target.checked })} />
              {stage}
            </label>
          ))}
        </fieldset>
        <button type="submit" disabled={start.isPending}>
          Start job
        </button>
      </form>
      <ErrorNote error={start.error} />
    </Card>
  );
}
