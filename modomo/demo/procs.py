"""Finding processes in /proc: what a supervisor, a fault test or ``bench/chaos.py`` checks
after a shutdown to prove nothing it started was left behind."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from pathlib import Path


def stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, process group) of a live process; None when gone or a zombie."""
    try:
        # The name in field 2 may hold spaces and parentheses: split after the last ")".
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[1]), int(fields[2])) if fields[0] != "Z" else None


def processes() -> Iterator[int]:
    """Every pid in /proc."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            yield int(entry.name)


def cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    return ""


def children(pid: int) -> dict[int, str]:
    """Live children of ``pid``: pid -> command line."""
    out = {}
    for child in processes():
        found = stat(child)
        if found is not None and found[0] == pid:
            out[child] = cmdline(child)
    return out


def in_groups(groups: Iterable[int]) -> list[int]:
    """Live processes in any of these process groups."""
    wanted = set(groups)
    return [p for p in processes() if (found := stat(p)) is not None and found[1] in wanted]


def with_env(name: str, value: str) -> list[int]:
    """Live processes started with ``name=value`` in their environment (so children left
    behind by a process are found too: they inherit it)."""
    marker = f"{name}={value}\0".encode()
    found = []
    for pid in processes():
        with contextlib.suppress(OSError):
            if marker in Path(f"/proc/{pid}/environ").read_bytes() and stat(pid) is not None:
                found.append(pid)
    return found


def alive(pids: Iterable[int]) -> list[int]:
    """The ones of ``pids`` still running (zombies count as gone)."""
    return [p for p in pids if stat(p) is not None]
