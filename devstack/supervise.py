"""Run a few child processes in the foreground for ``linkedge up``: prefixed output, orderly stop.

Children get their own session, so a Ctrl-C in the terminal reaches only the supervisor, which
then sends each child SIGTERM and waits for it. Where util-linux ``setpriv`` exists a child also
gets SIGTERM when the supervisor dies without cleaning up (kill -9), so no orphan keeps a port.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from types import FrameType
from typing import IO, TextIO

STOP_TIMEOUT = 30.0


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    pump: threading.Thread


class ProcessGroup:
    """Starts named children, copies their output line by line, stops them all."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.children: list[Child] = []
        self._lock = threading.Lock()
        self._setpriv = shutil.which("setpriv") if sys.platform == "linux" else None

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        prefix = [self._setpriv, "--pdeathsig", "TERM", "--"] if self._setpriv else []
        process = subprocess.Popen(
            [*prefix, *argv],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        assert process.stdout is not None
        pump = threading.Thread(target=self._pump, args=(name, process.stdout), daemon=True)
        pump.start()
        self.children.append(Child(name, process, pump))

    def _pump(self, name: str, stream: IO[bytes]) -> None:
        for line in iter(stream.readline, b""):
            with self._lock:
                self.out.write(f"{name:>6} | {line.decode(errors='replace').rstrip()}\n")
                self.out.flush()

    def exited(self) -> Child | None:
        """The first child that has exited, if any."""
        return next((c for c in self.children if c.process.poll() is not None), None)

    def stop_on_signals(self) -> threading.Event:
        """An event set by SIGINT or SIGTERM (instead of dying on them)."""
        event = threading.Event()

        def handler(signum: int, frame: FrameType | None) -> None:
            event.set()

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)
        return event

    def run_until(self, stop: threading.Event) -> Child | None:
        """Wait for ``stop``; returns the child that exited on its own first, if one did."""
        while not stop.wait(0.2):
            child = self.exited()
            if child is not None:
                self.say(f"{child.name} exited with status {child.process.returncode}; stopping the stack")
                return child
        self.say("stopping")
        return None

    def say(self, message: str) -> None:
        with self._lock:
            self.out.write(f"linkedge: {message}\n")
            self.out.flush()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM every child, wait for them all, kill what is left after ``timeout``."""
        for child in self.children:
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in self.children:
            try:
                child.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say(f"{child.name} did not stop in {timeout:.0f} s; killing it")
                try:
                    os.killpg(child.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                child.process.wait()
        for child in self.children:
            child.pump.join(timeout=2)
        self.children.clear()


def wait_healthy(url: str, supervisor: ProcessGroup, stop: threading.Event, timeout: float = 120.0) -> bool:
    """Poll ``url`` until it answers 200; False when a child dies, ``stop`` is set, or time runs out."""
    # No proxy: an http_proxy in the environment must not swallow requests to loopback.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stop.is_set():
        child = supervisor.exited()
        if child is not None:
            supervisor.say(f"{child.name} exited with status {child.process.returncode} while starting")
            return False
        try:
            with opener.open(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        stop.wait(0.2)
    return False
