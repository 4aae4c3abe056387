"""Properties of the dataset products' pure parts: the export fold, embeddings' encoding,
the dataset snapshot's review rules, deterministic zips."""

from __future__ import annotations

import io
import math
import zipfile

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from modomo.domain.codec import CODEC
from modomo.domain.events import (
    Embedding,
    EventBase,
    ExportCompleted,
    ExportFailed,
    ExportRequested,
    ExportStarted,
    ObjectCorrected,
    ReviewSubmitted,
)
from modomo.domain.products import ExportRow, apply_export
from modomo.domain.snapshot import fold_dataset
from modomo.export.archive import zip_files
from modomo.synthetic.log import synthetic_log

REQUEST = ExportRequested(export_id="x", dataset_id="d", format="coco")


def _after(request: ExportRequested, attempt: int, kind: str) -> EventBase:
    if kind == "started":
        return ExportStarted(export_id="x", position=f"{attempt}-0", attempt=attempt)
    if kind == "failed":
        return ExportFailed(export_id="x", error="boom", attempt=attempt, will_retry=attempt < 3)
    return ExportCompleted(
        export_id="x", position=f"{attempt}-0", key="k", size_bytes=1, sha256="s"
    )


STEPS = st.lists(
    st.tuples(st.integers(1, 3), st.sampled_from(["started", "failed", "completed"])),
    max_size=8,
)


def _fold(events: list[EventBase]) -> ExportRow:
    row: ExportRow | None = None
    for event in events:
        row = apply_export(row, event)
    assert row is not None
    return row


@given(steps=STEPS, data=st.data())
def test_redelivered_events_never_change_an_ended_export(
    steps: list[tuple[int, str]], data: st.DataObject
) -> None:
    events = [REQUEST, *(_after(REQUEST, a, k) for a, k in steps)]
    row = _fold(list(events))
    ended = any(k == "completed" for _, k in steps) or any(
        k == "failed" and a >= 3 for a, k in steps
    )
    assert (row.status in ("done", "failed")) == ended
    if ended:
        again = data.draw(st.lists(st.sampled_from(events), max_size=6))
        assert _fold([*events, *again]) == row
    first_end = next((k for a, k in steps if k == "completed" or (k == "failed" and a >= 3)), None)
    if first_end is not None:
        assert row.status == ("done" if first_end == "completed" else "failed")


@given(st.lists(st.floats(-1, 1, allow_nan=False), min_size=1, max_size=64))
def test_embeddings_round_trip_through_the_log_within_float16(values: list[float]) -> None:
    embedding = Embedding.of(values)
    assert embedding.dim == len(values)
    decoded = msgspec.json.decode(msgspec.json.encode(embedding), type=Embedding)
    for got, want in zip(decoded.floats(), values, strict=True):
        assert math.isclose(got, want, abs_tol=1e-3, rel_tol=1e-3)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 1000), scenes=st.integers(1, 6), data=st.data())
def test_the_review_rules_of_a_snapshot(seed: int, scenes: int, data: st.DataObject) -> None:
    log = synthetic_log(seed, scenes)
    dataset_id = log[0].dataset_id  # type: ignore[attr-defined]
    plain = fold_dataset(dataset_id, log)
    objects = [(s, o) for s, v in plain.scenes.items() for o in v.objects]
    extra: list[EventBase] = []
    if objects:
        picked = data.draw(st.lists(st.sampled_from(objects), max_size=4, unique=True))
        verdicts = data.draw(
            st.lists(
                st.sampled_from(["approve", "reject", "fix"]),
                min_size=len(picked),
                max_size=len(picked),
            )
        )
        for (scene_id, object_id), verdict in zip(picked, verdicts, strict=True):
            extra.append(
                ReviewSubmitted(
                    review_id=object_id, scene_id=scene_id, object_id=object_id, verdict=verdict
                )
            )
    snap = fold_dataset(dataset_id, [*log, *extra])
    rejected = {
        e.object_id for e in extra if isinstance(e, ReviewSubmitted) and e.verdict == "reject"
    }
    corrected = {e.object_id for e in log if isinstance(e, ObjectCorrected)}
    for scene_id in snap.scene_ids(reviewed_only=False):
        kept = {o.object_id for o in snap.objects(scene_id, reviewed_only=False)}
        assert not kept & rejected
        for obj in snap.objects(scene_id, reviewed_only=True):
            assert obj.object_id not in rejected
            assert snap.verdict(obj) in ("approve", "fix")
    reviewed = {o.object_id for s in snap.scene_ids(True) for o in snap.objects(s, True)}
    assert reviewed >= (corrected - rejected) & {o for _, o in objects}
    # The same events give the same snapshot, encoded through the log or not.
    again = fold_dataset(dataset_id, [CODEC.decode(CODEC.encode(e)) for e in [*log, *extra]])
    assert again == snap


@given(
    st.dictionaries(
        st.from_regex(r"[a-z]{1,8}(/[a-z]{1,8})?\.(json|jpg|txt)", fullmatch=True),
        st.binary(max_size=200),
        max_size=6,
    )
)
def test_zips_depend_only_on_names_and_contents(files: dict[str, bytes]) -> None:
    data = zip_files(files)
    assert zip_files(dict(reversed(list(files.items())))) == data
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert {n: archive.read(n) for n in archive.namelist()} == files
        assert archive.namelist() == sorted(files)
