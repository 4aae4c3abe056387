/** What the models said about the whole scene: type, caption, styles, palette, depth, and
 * which model (and profile, where the worker reports one) produced each result. */
import { memo } from "react";
import type { SceneOut, TermOut } from "../../lib/api/types";
import { conf, pct } from "../../lib/format";
import { nameOf } from "../../lib/taxonomies";

/** A model reference as the API gives it: a plain id, or {id, profile, digest, ...}. */
export function modelText(value: unknown): string {
  if (value == null) return "—";
  if (typeof value === "string") return value;
  if (typeof value === "object") {
    const v = value as { id?: unknown; profile?: unknown; digest?: unknown };
    const extra = [v.profile, typeof v.digest === "string" ? v.digest.slice(0, 12) : null].filter(Boolean).join(", ");
    return `${String(v.id ?? "?")}${extra ? ` (${extra})` : ""}`;
  }
  return String(value);
}

interface PaletteColour {
  hex?: string;
  share?: number;
}

function SceneInfoImpl({
  scene,
  sceneTypes,
  styles,
  showDepth,
  onDepth,
}: {
  scene: SceneOut;
  sceneTypes: TermOut[] | undefined;
  styles: TermOut[] | undefined;
  showDepth: boolean;
  onDepth: () => void;
}) {
  const palette = (scene.palette ?? []) as PaletteColour[];
  return (
    <div className="scene-info">
      <p>
        <strong>{nameOf(sceneTypes, scene.scene_type)}</strong> <span className="muted">conf {conf(scene.scene_type_conf)}</span>
      </p>
      {scene.caption && <p className="caption">“{scene.caption}”</p>}
      <h3>Styles</h3>
      <ul className="scores" data-testid="styles">
        {scene.styles.map((s) => (
          <li key={s.code}>
            <span>{nameOf(styles, s.code)}</span>
            <span className="bar" style={{ width: `${Math.round(s.score * 100)}%` }} />
            <span className="num">{s.score.toFixed(2)}</span>
          </li>
        ))}
        {scene.styles.length === 0 && <li className="muted">none</li>}
      </ul>
      <h3>Palette</h3>
      <div className="palette" data-testid="palette">
        {palette.map((c, i) => (
          <span key={i} className="swatch" style={{ background: c.hex, flexGrow: Math.max(0.02, c.share ?? 0) }} title={`${c.hex} · ${pct(c.share ?? 0)}`}>
            <span>{pct(c.share ?? 0)}</span>
          </span>
        ))}
        {palette.length === 0 && <span className="muted">none</span>}
      </div>
      <h3>Depth</h3>
      {scene.depth_url ? (
        <p>
          <button type="button" onClick={onDepth} aria-pressed={showDepth}>
            {showDepth ? "Show photo" : "Show depth map"}
          </button>{" "}
          <span className="muted small">
            near {scene.depth_near?.toFixed(2)} · far {scene.depth_far?.toFixed(2)}
          </span>
        </p>
      ) : (
        <p className="muted">none</p>
      )}
      <h3>Models</h3>
      <table className="table small" data-testid="models">
        <tbody>
          {Object.entries(scene.models).map(([stage, model]) => (
            <tr key={stage}>
              <td>{stage}</td>
              <td>{modelText(model)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export const SceneInfo = memo(SceneInfoImpl);
