"""Servers a fault test or ``bench/chaos.py`` owns and may stop, kill and restart: a
throwaway PostgreSQL cluster and a pgbouncer in transaction mode in front of one (Redis and
SeaweedFS are in :mod:`modomo.demo.servers`): plain classes, no pytest.

Both run as the ``postgres`` system user (neither runs as root), on free loopback ports,
with their files in a temporary folder that :meth:`close` removes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from modomo.demo.services import free_port


def _as_postgres(*args: str, timeout: float = 60) -> None:
    subprocess.run(
        ["runuser", "-u", "postgres", "--", *args], check=True, capture_output=True, timeout=timeout
    )


def available() -> str | None:
    """Why these servers cannot run here, or None when they can."""
    if not sorted(Path("/usr/lib/postgresql").glob("*/bin")):
        return "Debian's PostgreSQL binaries are not installed"
    if shutil.which("runuser") is None or os.geteuid() != 0:
        return "root is needed to run the servers as the postgres user"
    return None


def _children(pid: int) -> list[int]:
    """Pids of the direct children of ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            # Field 4 is the parent pid; the name in field 2 may hold spaces, in parentheses.
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


class PostgresCluster:
    """A PostgreSQL server of a test's own (fsync off: fast, and nothing to keep)."""

    def __init__(self) -> None:
        self.bindir = sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1]
        self.folder = Path(tempfile.mkdtemp(prefix="modomo-pg-"))
        shutil.chown(self.folder, "postgres", "postgres")
        self.data = self.folder / "data"
        self.port = free_port()
        _as_postgres(
            str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres"
        )
        self.start()

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        # -l: the server must not hold our output pipe, or waiting for pg_ctl never ends.
        _as_postgres(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.folder / "log"),
            *args,
        )

    def start(self) -> None:
        self._ctl("-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: clients are disconnected; ``immediate``: no shutdown
        checkpoint, as after a crash)."""
        self._ctl("-m", mode, "-w", "stop")

    def restart(self) -> None:
        self._ctl("-m", "fast", "-w", "restart")

    def postmaster_pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int((self.data / "postmaster.pid").read_text().split()[0])
        return None

    def kill(self) -> None:
        """SIGKILL the server and every backend at once, as a crash of the machine would."""
        pid = self.postmaster_pid()
        if pid is None:
            return
        for victim in [pid, *_children(pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if not Path(f"/proc/{pid}").exists() and not _children(pid):
                return
            time.sleep(0.05)

    def close(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)


class Pgbouncer:
    """pgbouncer with ``pool_mode = transaction`` in front of ``upstream_port``.

    The server pool is kept small, so the transactions of different clients share server
    connections and anything a client keeps in its session (a temporary table, a session
    lock, a prepared statement, a ``search_path``) would break.
    """

    def __init__(self, upstream_port: int, pool_size: int = 3) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="modomo-pgbouncer-"))
        shutil.chown(self.folder, "postgres", "postgres")
        self.port = free_port()
        (self.folder / "users.txt").write_text('"postgres" ""\n')
        (self.folder / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host=127.0.0.1 port={upstream_port}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {self.folder / 'users.txt'}\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {pool_size}\n"
            "max_client_conn = 200\n"
            f"logfile = {self.folder / 'pgbouncer.log'}\n"
            f"pidfile = {self.folder / 'pgbouncer.pid'}\n"
        )
        for path in self.folder.iterdir():
            shutil.chown(path, "postgres", "postgres")
        self.proc = subprocess.Popen(
            ["runuser", "-u", "postgres", "--", "pgbouncer", str(self.folder / "pgbouncer.ini")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait_listening()

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _wait_listening(self) -> None:
        import socket

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = self.folder / "pgbouncer.log"
                raise RuntimeError(f"pgbouncer exited: {log.read_text() if log.exists() else ''}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("pgbouncer did not listen within 20 s")

    def log(self) -> str:
        path = self.folder / "pgbouncer.log"
        return path.read_text() if path.exists() else ""

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # runuser passes SIGTERM on to pgbouncer
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.folder, ignore_errors=True)
