"""Every projector, by name."""

from __future__ import annotations

from modomo.projections.archive import ArchiveProjector
from modomo.projections.catalog import DatasetsProjector, ReviewsProjector
from modomo.projections.embeddings import EmbeddingsProjector
from modomo.projections.jobs import JobsProjector
from modomo.projections.products import EvaluationsProjector, ExportsProjector
from modomo.projections.projector import Projector
from modomo.projections.scenes import ScenesProjector

PROJECTORS: dict[str, type[Projector]] = {
    cls.name: cls
    for cls in (
        ArchiveProjector,
        DatasetsProjector,
        JobsProjector,
        ScenesProjector,
        ReviewsProjector,
        ExportsProjector,
        EvaluationsProjector,
        EmbeddingsProjector,
    )
}
READ_MODEL_PROJECTORS = tuple(name for name, cls in PROJECTORS.items() if cls.tables)
"""The projectors a replay can rebuild (the archive is the replay's source)."""
READ_TABLES = tuple(table for cls in PROJECTORS.values() for table in cls.tables)
"""Every read-model table, each owned by exactly one projector."""


def select(names: list[str] | None) -> list[Projector]:
    """Instances of the named projectors (all when ``names`` is empty)."""
    unknown = sorted(set(names or ()) - set(PROJECTORS))
    if unknown:
        raise KeyError(
            f"unknown projector(s): {', '.join(unknown)}; known: {', '.join(PROJECTORS)}"
        )
    return [PROJECTORS[name]() for name in (names or list(PROJECTORS))]
