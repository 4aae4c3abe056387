"""The evaluation as text: the summary ``modomo eval`` prints."""

from __future__ import annotations

from modomo.domain.events import EvaluationRecorded

LABELS = {
    "bbox_map": "detection mAP@[.5:.95]",
    "bbox_map50": "detection mAP@.5",
    "mask_map": "mask mAP@[.5:.95]",
    "mask_map50": "mask mAP@.5",
    "scene_type_f1": "scene type macro-F1",
    "style_f1": "style macro-F1",
    "material_f1": "material macro-F1",
    "palette_de00": "palette ΔE00, mean (lower is better)",
    "palette_de00_median": "palette ΔE00, median",
    "caption_words_mean": "caption words, mean",
    "caption_words_max": "caption words, max",
    "caption_empty_share": "captions empty",
    "caption_repetition_share": "captions repeating a word 3x",
    "caption_distinct_words": "caption vocabulary (distinct words)",
    "caption_word_share": "caption tokens that are words",
    "caption_truth_recall": "caption recall of true content words",
}


def render(event: EvaluationRecorded) -> str:
    """A human-readable report of ``event``."""
    lines = [
        f"Evaluation {event.evaluation_id}: job {event.job_id} against {event.golden} "
        f"(sha256 {event.golden_sha256[:12]}), {event.scenes} scenes, {event.missing} missing",
        "models: "
        + ", ".join(f"{stage} {model}" for stage, model in sorted(event.models.items()))
        + (f" (profile {event.profile})" if event.profile else ""),
        "",
        f"  {'metric':<40} {'value':>9} {'change':>9}",
    ]
    for name, value in event.metrics.items():
        delta = event.deltas.get(name)
        flag = "  REGRESSED" if name in event.regressions else ""
        change = f"{delta:+9.4f}" if delta is not None else f"{'-':>9}"
        lines.append(f"  {LABELS.get(name, name):<40} {value:9.4f} {change}{flag}")
    if event.previous_id:
        lines.append(f"\n  changes are against evaluation {event.previous_id} of the same set")
    if event.regressions:
        lines.append(f"  regressions: {', '.join(event.regressions)}")
    box, mask = event.per_class.get("bbox_ap", {}), event.per_class.get("mask_ap", {})
    if box:
        lines += ["", f"  {'class (in the golden set)':<28} {'box AP':>8} {'mask AP':>8}"]
        for code in sorted(box, key=lambda c: (-box[c], c)):
            lines.append(f"  {code:<28} {box[code]:8.4f} {mask.get(code, 0.0):8.4f}")
    for kind in ("scene_type_f1", "style_f1", "material_f1"):
        scores = event.per_class.get(kind)
        if scores:
            best = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
            shown = ", ".join(f"{code} {value:.3f}" for code, value in best[:8])
            more = f" (+{len(best) - 8} more)" if len(best) > 8 else ""
            lines.append(f"  {LABELS[kind]} per class: {shown}{more}")
    if event.notes:
        lines += ["", *(f"  note: {note}" for note in event.notes)]
    return "\n".join(lines)
