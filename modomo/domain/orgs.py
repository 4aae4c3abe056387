"""Organisations: every dataset, and everything made from it, belongs to one.

An organisation is named by a short slug. Events written before organisations existed
carry no ``org`` field and decode as :data:`DEFAULT_ORG` (the field's msgspec default),
so a replay of an old log puts every old row in the default organisation, exactly where
the running system put them: the migration needs no downtime and no rewrite of the log.
"""

from __future__ import annotations

import re

DEFAULT_ORG = "default"
"""The organisation of data (and callers) from before organisations existed."""

ORG_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
"""What an organisation id looks like: lower-case letters, digits, ``_`` and ``-``, up to
63 characters, starting with a letter or digit (so it is safe in a header or a path)."""
_ORG = re.compile(ORG_PATTERN)


def valid_org(org: object) -> bool:
    """Whether ``org`` is a well-formed organisation id."""
    return isinstance(org, str) and _ORG.fullmatch(org) is not None and "\n" not in org
