"""Remote benchmark: the latency ``deskpilot serve`` + ``RemoteDesktop`` add per action.

Starts a local 1280x800 desktop in this process and ``deskpilot serve`` (its own 1280x800
desktop) as a subprocess on loopback, each with an xterm filled with a directory listing (a
screenshot of some detail), then runs the same tool calls alternately on the
local executors (``ComputerTool``, ``BashTool``) and on the RemoteDesktop's (each call one
round trip), and prints medians in milliseconds:

* ``local``: the local executor's call;
* ``remote``: the whole remote call as the client sees it;
* ``added``: per call, the client's time minus the server's own time for the executor
  (``server_s`` in the reply): request and reply encoding, the WebSocket on loopback, base64
  and the client's decoding. This is the protocol's cost, free of the settle-time noise of
  two different desktops (``remote - local`` is printed too, but carries that noise).

Usage::

    python benchmarks/remote_bench.py             # 30 calls per action
    python benchmarks/remote_bench.py -n 100
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from deskpilot import RemoteDesktop
from deskpilot.computer_use.bash import BashTool
from deskpilot.computer_use.computer import ComputerTool
from deskpilot.desktop.local import LocalDesktop
from deskpilot.prompt import ToolCall

WIDTH, HEIGHT = 1280, 800


def actions(i: int) -> list[tuple[str, ToolCall]]:
    """The calls of round ``i`` (the pointer alternates so every move changes something)."""
    x = 200 + (i % 2) * 400
    return [
        ("screenshot", ToolCall(f"s{i}", "computer", {"action": "screenshot"})),
        (
            "mouse_move",
            ToolCall(f"m{i}", "computer", {"action": "mouse_move", "coordinate": [x, 300]}),
        ),
        ("key (no-op)", ToolCall(f"k{i}", "computer", {"action": "key", "text": "shift"})),
        ("cursor_position", ToolCall(f"c{i}", "computer", {"action": "cursor_position"})),
        ("bash true", ToolCall(f"b{i}", "bash", {"command": "true"})),
    ]


async def start_server() -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "deskpilot",
        "serve",
        "--port",
        "0",
        "--apps",
        "terminal",
        "--width",
        str(WIDTH),
        "--height",
        str(HEIGHT),
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")},
    )
    assert proc.stderr is not None
    while True:
        line = (await asyncio.wait_for(proc.stderr.readline(), 60)).decode()
        if not line:
            raise SystemExit("deskpilot serve did not start")
        found = re.search(r"listening on (ws://\S+)", line)
        if found:
            return proc, found.group(1)


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:8.2f}"


async def main(n: int) -> None:
    proc, url = await start_server()
    try:
        async with (
            LocalDesktop(WIDTH, HEIGHT, apps=("terminal",)) as local,
            RemoteDesktop(url) as remote,
        ):
            for desktop in (local, remote):  # the same busy screen on both
                await desktop.click(300, 200)
                await desktop.type_text("clear; ls -l /usr/bin | head -40\n")
            await asyncio.sleep(1.0)
            computer = ComputerTool(local, "computer_20251124")
            bash = BashTool()
            r_computer, _, r_bash = remote.tool_executors(
                computer="computer_20251124", editor="text_editor_20250728", bash="bash_20250124"
            )
            rows: dict[str, dict[str, list[float]]] = {}
            sizes: list[tuple[int, int]] = []
            for i in range(n + 2):  # two warm-up rounds
                for name, call in actions(i):
                    lo, re_ = (bash, r_bash) if call.name == "bash" else (computer, r_computer)
                    t0 = time.perf_counter()
                    mine = await lo.execute(call)
                    t1 = time.perf_counter()
                    theirs = await re_.execute(call)
                    t2 = time.perf_counter()
                    assert not mine.is_error and not theirs.is_error, (mine, theirs)
                    server_s: Any = getattr(re_, "last_server_s", 0.0)
                    if i < 2:
                        continue
                    row = rows.setdefault(name, {"local": [], "remote": [], "added": []})
                    row["local"].append(t1 - t0)
                    row["remote"].append(t2 - t1)
                    row["added"].append((t2 - t1) - server_s)
                    if name == "screenshot":
                        sizes.append((len(mine.images[0].data), len(theirs.images[0].data)))
            await bash.aclose()
            for tool in (r_computer, r_bash):
                await tool.aclose()
    finally:
        proc.send_signal(signal.SIGTERM)
        await proc.wait()
    print(f"remote_bench: {WIDTH}x{HEIGHT}, loopback, {n} calls per action, medians in ms")
    local_kb, remote_kb = (statistics.median(s) / 1000 for s in zip(*sizes, strict=True))
    print(
        f"screenshot PNG {local_kb:.0f} kB local, {remote_kb:.0f} kB remote (binary WebSocket frames)"
    )
    print(f"{'action':<18}{'local':>8}{'remote':>8}{'remote-local':>14}{'added':>8}")
    for name, row in rows.items():
        diff = statistics.median(row["remote"]) - statistics.median(row["local"])
        print(
            f"{name:<18}{ms(row['local'])}{ms(row['remote'])}{diff * 1000:14.2f}{ms(row['added'])}"
        )
    all_added = [v for row in rows.values() for v in row["added"]]
    print(
        f"added per action, all actions: median {ms(all_added).strip()} ms, "
        f"p95 {sorted(all_added)[int(0.95 * len(all_added))] * 1000:.2f} ms"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=30, help="calls per action")
    asyncio.run(main(parser.parse_args().n))
