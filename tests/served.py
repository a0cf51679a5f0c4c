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


@contextlib.contextmanager
def served(*args: str, env: dict[str, str] | None = None, timeout_s: float = 60.0) -> Iterator[str]:
    """Start ``deskpilot serve --port 0 ARGS`` and yield its ``ws://`` URL; SIGTERM at exit
    (the server must then stop with status 128 + 15)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "deskpilot", "serve", "--port", "0", *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        text=True,
    )
    assert proc.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            ready, _, _ = select.select(
                [proc.stderr], [], [], max(0.0, deadline - time.monotonic())
            )
            line = proc.stderr.readline() if ready else ""
            if not line:
                raise AssertionError(f"deskpilot serve did not start: {''.join(lines)}")
            lines.append(line)
            found = re.search(r"listening on (ws://\S+)", line)
            if found:
                break
        yield found.group(1)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        proc.stderr.close()
    assert code == 128 + signal.SIGTERM, (code, "".join(lines))
