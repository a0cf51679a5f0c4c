"""``deskpilot serve`` as a real subprocess for tests: ``with served() as url: ...``."""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator


def start_server(*args: str, timeout_s: float = 60.0) -> tuple[subprocess.Popen[str], str]:
    """Start ``deskpilot serve --port 0 ARGS`` (a later ``--port`` wins); returns the process
    and its ``ws://`` URL once it listens."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "deskpilot", "serve", "--port", "0", *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env=dict(os.environ),
        text=True,
    )
    assert proc.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout_s
    while True:
        ready, _, _ = select.select([proc.stderr], [], [], max(0.0, deadline - time.monotonic()))
        line = proc.stderr.readline() if ready else ""
        if not line:
            proc.kill()
            proc.wait()
            raise AssertionError(f"deskpilot serve did not start: {''.join(lines)}")
        lines.append(line)
        found = re.search(r"listening on (ws://\S+)", line)
        if found:
            return proc, found.group(1)


@contextlib.contextmanager
def served(*args: str) -> Iterator[str]:
    """Start ``deskpilot serve --port 0 ARGS`` and yield its ``ws://`` URL; SIGTERM at exit
    (the server must then stop with status 128 + 15)."""
    proc, url = start_server(*args)
    try:
        yield url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        finally:
            assert proc.stderr is not None
            proc.stderr.close()
    assert code == 128 + signal.SIGTERM, code
