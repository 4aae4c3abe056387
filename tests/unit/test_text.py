"""Text PostgreSQL can store: the check, the walk that names a field, the sanitiser."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from modomo.domain.text import find_problem, problem, sanitise

# Every code point Python can hold in a str, lone surrogates and NUL included.
any_text = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF))
unstorable = st.sampled_from(["\x00", "\ud800", "\udbff", "\udc00", "\udfff"])


def storable_by_postgres(text: str) -> bool:
    """What PostgreSQL's text type takes in a UTF-8 database: valid UTF-8, no NUL."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


@given(any_text)
def test_problem_agrees_with_what_postgres_accepts(text: str) -> None:
    assert (problem(text) is None) == storable_by_postgres(text)


@given(any_text)
def test_sanitised_text_is_storable_and_storable_text_is_unchanged(text: str) -> None:
    clean = sanitise(text)
    assert problem(clean) is None
    assert storable_by_postgres(clean)
    assert sanitise(clean) == clean
    if problem(text) is None:
        assert clean == text
    # NUL goes, each lone surrogate becomes one U+FFFD: nothing else moves.
    assert len(clean) == len(text) - text.count("\x00")


@given(st.text(), unstorable, st.text())
def test_problem_names_the_character_and_its_offset(before: str, bad: str, after: str) -> None:
    before = sanitise(before)
    reason = problem(before + bad + sanitise(after))
    assert reason is not None
    assert f"offset {len(before)}" in reason
    assert ("NUL" in reason) == (bad == "\x00")


class Inner(msgspec.Struct):
    filename: str


class Outer(msgspec.Struct):
    name: str
    files: list[Inner]
    attrs: dict[str, Any]


@given(
    st.sampled_from(["name", "files[1].filename", "attrs.colour", "attrs.colour (key)"]),
    unstorable,
)
def test_find_problem_names_the_field_in_nested_values(where: str, bad: str) -> None:
    value = Outer(
        name="room" + (bad if where == "name" else ""),
        files=[Inner(filename="a.jpg"), Inner(filename="b" + (bad if "files" in where else ""))],
        attrs={
            ("colour" + bad if "key" in where else "colour"): "red"
            + (bad if where == "attrs.colour" else ""),
            "n": 3,
        },
    )
    found = find_problem(value)
    assert found is not None
    path, reason = found
    if "key" in where:
        assert path.endswith(" (key)")
        assert path.startswith("attrs.")
    else:
        assert path == where
    assert "offset" in reason
    # The message itself is storable and printable: a bad key is shown escaped.
    assert problem(path) is None


def test_clean_values_and_non_text_pass() -> None:
    assert find_problem(Outer(name="x", files=[], attrs={"a": 1.5, "b": True})) is None
    assert find_problem((1, 2.0, None, b"\x00")) is None  # bytes are not text
    assert find_problem("") is None


@pytest.mark.parametrize("text", ["", "a", "ümlaut ✓ 🛋", "\ufffd", "\U0010ffff"])
def test_ordinary_unicode_is_fine(text: str) -> None:
    assert problem(text) is None
    assert sanitise(text) == text
