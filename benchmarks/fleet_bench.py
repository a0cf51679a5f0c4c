"""Fleet benchmark: the cost of one desktop when ``run_many`` drives many at once.

A scripted 11-step xterm task (10 tool calls: screenshot, click, typing, keys, scroll, a
pointer move and two bash commands, then a final answer) runs with zero model latency on N
``LocalDesktop(1280, 800, apps=("terminal",))`` desktops at once through
:func:`deskpilot.run_many` (each desktop runs ``--tasks`` tasks one after the other, reused
between them). The model is deskpilot's fake server (:class:`deskpilot.testing.FakeModelServer`)
in a *separate process*, so its CPU is not counted as the agent's; it answers each request
with the scripted turn matching the number of assistant turns in the request.

Per N it prints:

* ``tasks/min``: tasks finished per minute of ``run_many`` wall time (desktop starts included);
* ``start p50``: seconds from asking for a desktop to its being ready (all N start together);
* ``act p50/p95``: per computer action, seconds from the call to its result (input, settle,
  screenshot and encoding: ``ActionTimings.total_s``);
* ``lag p50/p95/max``: event-loop lag in ms (a 10 ms sleeper's lateness);
* ``cpu/step``: CPU ms of this Python process (every thread) per model turn, plus that of
  the ``deskpilot serve`` processes for the rows through the computer server, less the lag
  meter's own wake-ups (calibrated alone first, printed in the header); ``cores``: the
  same as cores used on average; ``desks``: cores used by the desktops' processes (Xvfb,
  openbox, xterm, bash); ``model``: cores used by the fake model server (a single
  Python process: it caps tasks/min once it nears one core); ``host``: how busy the
  machine's CPUs were (everything on it: Xvfb, the apps, the fake server, other programs);
* with ``--processes K`` (K > 1, rows labelled ``local Kproc``): ``run_many(processes=K)``
  spreads the desktops over K worker processes; ``cpu/step`` then adds the workers' CPU
  (polled every 0.2 s: the last fraction of a second of each worker is missed), per-action
  times come from the results' step records, ``lag`` is the parent's loop only (the
  agents run in the workers), ``start p50`` is not measured, and ``PSS/desk`` is the most
  seen while polling (every 2 s); each worker's start (spawn, importing deskpilot: about
  1 s of CPU) is in its CPU;
* ``PSS/desk``: proportional set size (MB) of the processes started for the desktops (Xvfb,
  openbox, xterm, the bash shells and their wrappers; the ``deskpilot serve`` processes for
  the rows through the server) divided by N, sampled once mid-run;
  ``py PSS``: this Python process's PSS in MB at the same moment.

The last lines compare per-action p95 to N=1 against the targets of issue 8 (N=16: 1.2x,
N=32: 1.5x) and CPU per step (10 ms) and PSS per desktop (50 MB).

Usage::

    python benchmarks/fleet_bench.py                 # N = 1, 2, 4, 8, 16, 32
    python benchmarks/fleet_bench.py --n 1,2,4       # a quick subset
    python benchmarks/fleet_bench.py --n 8 --tasks 3 --latency 1.0
    python benchmarks/fleet_bench.py --remote        # also through ``deskpilot serve`` (when present)
    python benchmarks/fleet_bench.py --shared-limit  # plus 4 processes sharing one rate limit
    python benchmarks/fleet_bench.py --n 8,16 --processes 1,2  # run_many(processes=2) too

Rows that need other packages (remote desktops through ``deskpilot serve``; four processes
sharing one rate limit) are added when those packages are installed, else skipped with a note.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

MODEL = "claude-sonnet-4-5"
TASK = "Run the scripted fleet benchmark task in the terminal."

# The scripted task: (tool name, input) per turn; the 11th turn is the final answer.
SCRIPT: list[tuple[str, dict[str, Any]]] = [
    ("computer", {"action": "screenshot"}),
    ("computer", {"action": "left_click", "coordinate": [400, 300]}),
    ("computer", {"action": "type", "text": "echo fleet $((6*7))\n"}),
    ("bash", {"command": "echo hello from bash; pwd"}),
    ("computer", {"action": "key", "text": "ctrl+l"}),
    ("computer", {"action": "type", "text": "seq 1 40\n"}),
    (
        "computer",
        {
            "action": "scroll",
            "coordinate": [400, 300],
            "scroll_direction": "up",
            "scroll_amount": 3,
        },
    ),
    ("computer", {"action": "mouse_move", "coordinate": [600, 450]}),
    ("bash", {"command": "ls / | head -3"}),
    ("computer", {"action": "type", "text": "clear\n"}),
]
STEPS = len(SCRIPT) + 1


def scripted_reply(body: Any) -> dict[str, Any]:
    """The Messages API response for a request: turn k = number of assistant turns so far."""
    from deskpilot.testing.wire import message_response, text_response, tool_use_block

    messages = body.get("messages", []) if isinstance(body, dict) else []
    k = sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "assistant")
    if k >= len(SCRIPT):
        return text_response("The scripted fleet task is done.")
    name, tool_input = SCRIPT[k]
    return message_response(
        [
            {"type": "text", "text": f"Step {k + 1}."},
            tool_use_block(name, tool_input, id=f"toolu_fleet_{k:02d}"),
        ]
    )


# ------------------------------------------------------------------ the model server process
def serve_model(latency_s: float) -> None:
    """Child process: serve the script on a free loopback port; print the URL; run until
    stdin closes (the parent exited or closed it)."""
    from deskpilot.testing import FakeModelServer

    async def main() -> None:
        server = FakeModelServer(
            handler=lambda req: scripted_reply(req.body), latency_s=latency_s, record=False
        )
        await server.start()
        print(server.url, flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)
        await server.close()

    asyncio.run(main())


@contextlib.contextmanager
def model_server(latency_s: float) -> Any:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve-model", "--latency", str(latency_s)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        if not url.startswith("http"):
            raise RuntimeError("The fake model server did not start.")
        yield url, proc.pid
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ------------------------------------------------------------------ measurements
class LagMeter:
    """Event-loop lag: how late a 10 ms sleep wakes up (seconds)."""

    def __init__(self, period_s: float = 0.01) -> None:
        self.period_s = period_s
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t0 = loop.time()
            await asyncio.sleep(self.period_s)
            self.samples.append(max(0.0, loop.time() - t0 - self.period_s))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def lag_meter_cpu_s(seconds: float = 1.0) -> float:
    """CPU seconds one wake-up of the lag meter costs this process (measured alone on an
    idle loop): the meter is an instrument, so ``cpu/step`` leaves its own wake-ups out
    (about 100 a second: ~2-4 ms per step at N=1)."""
    meter = LagMeter()
    t0 = time.process_time()
    meter.start()
    await asyncio.sleep(seconds)
    await meter.stop()
    return (time.process_time() - t0) / max(1, len(meter.samples))


LAG_METER_CPU_S = [0.0]
"""The calibrated CPU seconds of one lag-meter wake-up (set by :func:`amain`)."""


def pss_mb(pid: int) -> float:
    import psutil

    try:
        return psutil.Process(pid).memory_full_info().pss / 2**20
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0.0


def children_pss_mb(exclude: set[int]) -> tuple[float, int]:
    """(total PSS in MB, process count) of this process's descendants but ``exclude`` and
    Python processes other than ``deskpilot serve`` (deskpilot's watcher)."""
    import psutil

    total, count = 0.0, 0
    for child in psutil.Process().children(recursive=True):
        try:
            if child.pid in exclude:
                continue
            if "python" in child.name() and "serve" not in child.cmdline():
                continue  # deskpilot's watcher; a `deskpilot serve` counts (it is the desktop's)
            total += child.memory_full_info().pss / 2**20
            count += 1
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total, count


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


@dataclass
class Row:
    label: str
    n: int
    tasks: int = 0
    ok: int = 0
    wall_s: float = 0.0
    starts: list[float] = field(default_factory=list)
    actions: list[float] = field(default_factory=list)
    lag: list[float] = field(default_factory=list)
    cpu_s: float = 0.0
    steps: int = 0
    pss_desk: float = float("nan")
    pss_py: float = float("nan")
    core_share: float = float("nan")
    server_cores: float = float("nan")
    desktop_cores: float = float("nan")
    host_busy: float = float("nan")
    note: str = ""

    @property
    def tasks_per_min(self) -> float:
        return 60 * self.ok / self.wall_s if self.wall_s else 0.0


class _TimedDesktop:
    """An async context manager around a desktop that records its start time."""

    def __init__(self, make: Callable[[], Any], starts: list[float], live: list[Any]) -> None:
        self._make = make
        self._starts = starts
        self._live = live
        self._desk: Any = None

    async def __aenter__(self) -> Any:
        t0 = time.perf_counter()
        self._desk = self._make()
        entered = await self._desk.__aenter__()
        self._starts.append(time.perf_counter() - t0)
        desk = entered if entered is not None else self._desk
        self._live.append(desk)
        return desk

    async def __aexit__(self, *exc: object) -> None:
        with contextlib.suppress(ValueError):
            self._live.remove(self._desk)
        await self._desk.__aexit__(*exc)


class _WorkerCPU:
    """``run_many(processes=K)``: polls the worker processes' CPU time (they are gone when
    ``run_many`` returns) and the desktops' PSS (the most over the run), in a thread."""

    def __init__(self, server_pid: int, period_s: float = 0.2, pss_every: int = 10) -> None:
        self.server_pid = server_pid
        self.period_s = period_s
        self.pss_every = pss_every  # PSS (reading every smaps) only every 10th poll: 2 s
        self.polls = 0
        self.cpu: dict[int, float] = {}
        self.pss_desk_total = float("nan")
        self.own_cpu_s = 0.0
        self._stop = asyncio.Event()

    def _sample(self) -> None:
        import psutil

        t0 = time.thread_time()
        for child in psutil.Process().children(recursive=False):
            try:
                if "spawn_main" in " ".join(child.cmdline()):
                    t = child.cpu_times()
                    self.cpu[child.pid] = t.user + t.system
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        if self.polls % self.pss_every == self.pss_every // 2:
            total, _ = children_pss_mb({self.server_pid})
            if not total <= self.pss_desk_total:  # nan-safe max
                self.pss_desk_total = total
        self.polls += 1
        self.own_cpu_s += time.thread_time() - t0

    async def run(self) -> None:
        while not self._stop.is_set():
            await asyncio.to_thread(self._sample)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.period_s)

    def stop(self) -> None:
        self._stop.set()


def _record_actions(row: Row, results: list[Any]) -> int:
    """Per-action times from the results' step records (processes > 1: no on_step)."""
    steps = 0
    for r in results:
        for record in r.step_records:
            steps += 1
            for action in record.actions:
                if action.name == "computer" and action.executed:
                    row.actions.append(action.timings.total_s)
    return steps


async def run_fleet(
    label: str,
    n: int,
    *,
    url: str,
    server_pid: int,
    tasks_per_desktop: int,
    make_desktop: Callable[[], Any],
    processes: int = 1,
) -> Row:
    import psutil

    from deskpilot import LLMClient
    from deskpilot.agent.many import run_many

    row = Row(label, n, tasks=n * tasks_per_desktop)
    live: list[Any] = []
    sample_at = max(1, n * (STEPS // 2))
    steps = 0
    sampled = asyncio.Event()
    sample_cpu = [0.0]

    def sample() -> None:
        t0 = time.thread_time()
        total, _count = children_pss_mb({server_pid})
        row.pss_desk = total / n
        row.pss_py = pss_mb(os.getpid())
        sample_cpu[0] = time.thread_time() - t0

    async def on_step(record: Any) -> None:
        nonlocal steps
        steps += 1
        for action in record.actions:
            if action.name == "computer" and action.executed:
                row.actions.append(action.timings.total_s)
        if steps >= sample_at and not sampled.is_set() and len(live) == n:
            sampled.set()
            await asyncio.to_thread(sample)

    lag = LagMeter()
    me = psutil.Process()
    with tempfile.TemporaryDirectory(prefix="deskpilot-fleet-bench-") as tmp:
        async with LLMClient(
            MODEL,
            # no client-side limit: the benchmark measures the desktops, not the rate limiter
            max_requests_per_minute=1e9,
            max_tokens_per_minute=None,
            max_concurrent_requests=100_000,
            base_url=url,
            api_key="sk-fleet-bench-000000",
            progress="none",
        ) as client:
            lag.start()
            workers = _WorkerCPU(server_pid)
            cpu0 = me.cpu_times()
            host0 = psutil.cpu_times()
            srv0 = psutil.Process(server_pid).cpu_times()
            kids0 = os.times()
            t0 = time.perf_counter()
            if processes == 1:
                results = await run_many(
                    [TASK] * row.tasks,
                    client=client,
                    desktops=n,
                    desktop_factory=lambda: _TimedDesktop(make_desktop, row.starts, live),
                    show_progress=False,
                    max_turns=STEPS + 2,
                    out_dir=tmp,
                    on_step=on_step,
                )
            else:  # the workers' CPU is polled; actions come from the step records
                polling = asyncio.create_task(workers.run())
                results = await run_many(
                    [TASK] * row.tasks,
                    client=client,
                    desktops=n,
                    desktop_factory=make_desktop,
                    show_progress=False,
                    max_turns=STEPS + 2,
                    out_dir=tmp,
                    processes=processes,
                )
                workers.stop()
                await polling
            row.wall_s = time.perf_counter() - t0
            cpu1 = me.cpu_times()
            host1 = psutil.cpu_times()
            srv1 = psutil.Process(server_pid).cpu_times()
            kids1 = os.times()  # the desktops' processes, all reaped by now
            await lag.stop()
    row.cpu_s = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system) - sample_cpu[0]
    row.cpu_s -= len(lag.samples) * LAG_METER_CPU_S[0]  # the instrument's own wake-ups
    row.cpu_s += sum(SERVER_CPU)  # through `deskpilot serve`: the servers' Python CPU too
    SERVER_CPU.clear()
    worker_cpu = sum(workers.cpu.values())
    if processes > 1:  # the workers' Python CPU too; the parent's own polling not
        row.cpu_s += worker_cpu - workers.own_cpu_s
        steps = _record_actions(row, results)
        row.pss_desk = workers.pss_desk_total / n
    row.steps = steps
    row.core_share = row.cpu_s / row.wall_s
    row.server_cores = (srv1.user + srv1.system - srv0.user - srv0.system) / row.wall_s
    kids = kids1.children_user + kids1.children_system - kids0.children_user - kids0.children_system
    kids -= worker_cpu  # processes > 1: the workers are children too (their desktops count)
    row.desktop_cores = kids / row.wall_s
    busy = [b - a for a, b in zip(host0, host1, strict=True)]
    idle = (host1.idle - host0.idle) + (host1.iowait - host0.iowait)
    row.host_busy = 1 - idle / max(1e-9, sum(busy))
    row.lag = lag.samples
    row.ok = sum(1 for r in results if r.ok and r.steps == STEPS)
    bad = [r for r in results if not (r.ok and r.steps == STEPS)]
    if bad:
        row.note = f"{len(bad)} failed: {bad[0].stop_reason} {bad[0].error or ''}"[:120]
    return row


# ------------------------------------------------------------------ optional rows (hooks)
def remote_factory() -> Callable[[], Any] | None:
    """A factory of desktops reached through ``deskpilot serve`` (one server process per
    desktop), or None when :mod:`deskpilot.remote` is not installed yet."""
    try:
        from deskpilot.remote import RemoteDesktop  # noqa: F401
    except ImportError:
        return None
    return _RemoteServed


SERVER_CPU: list[float] = []
"""CPU seconds of the ``deskpilot serve`` processes that ended (added to the row's CPU)."""


class _RemoteServed:
    """``deskpilot serve`` on a free port in a child process, and a RemoteDesktop to it."""

    def __init__(self) -> None:
        self._proc: asyncio.subprocess.Process | None = None
        self._desk: Any = None

    async def __aenter__(self) -> Any:
        import socket

        from deskpilot.remote import RemoteDesktop

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "deskpilot",
            "serve",
            "--port",
            str(port),
            "--apps",
            "terminal",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                self._desk = RemoteDesktop(f"ws://127.0.0.1:{port}")
                return await self._desk.__aenter__()
            except Exception:
                if time.monotonic() > deadline or self._proc.returncode is not None:
                    raise
                await asyncio.sleep(0.2)

    async def __aexit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            await self._desk.__aexit__(*exc)
        if self._proc is not None and self._proc.returncode is None:
            import psutil

            with contextlib.suppress(psutil.Error):
                t = psutil.Process(self._proc.pid).cpu_times()
                SERVER_CPU.append(t.user + t.system)
            self._proc.terminate()
            await self._proc.wait()


def shared_limit_rows(window_s: float) -> list[str]:
    """The most requests in any window with 4 processes sharing one limit vs each holding its
    own: ``benchmarks/fleet_limit_bench.py`` (``deskpilot.fleet``, on a local Ray) run with
    the window scaled to ``window_s`` seconds, or a note when it is not there."""
    script = Path(__file__).with_name("fleet_limit_bench.py")
    try:
        import deskpilot.fleet  # noqa: F401
    except ImportError:
        return ["shared limit: deskpilot.fleet is not installed; row skipped"]
    if not script.exists():
        return [f"shared limit: {script.name} is missing; row skipped"]
    proc = subprocess.run(
        [
            sys.executable,
            str(script),
            "--window",
            f"{window_s:g}",
            "--duration",
            f"{window_s * 4 / 3:g}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln and not ln.startswith("[")]
    if proc.returncode != 0:
        return [f"shared limit: {script.name} failed: {proc.stderr.strip()[-300:]}"]
    return lines


# ------------------------------------------------------------------ main
def print_table(rows: list[Row]) -> None:
    print(
        f"\n{'desktops':<14}{'N':>4}{'tasks':>7}{'ok':>5}{'tasks/min':>10}{'start p50':>10}"
        f"{'act p50':>9}{'act p95':>9}{'lag p50':>9}{'lag p95':>9}{'lag max':>9}"
        f"{'cpu/step':>10}{'cores':>7}{'desks':>7}{'model':>7}{'host':>6}{'PSS/desk':>10}{'py PSS':>8}"
    )
    for r in rows:
        print(
            f"{r.label:<14}{r.n:>4}{r.tasks:>7}{r.ok:>5}{r.tasks_per_min:>10.1f}"
            f"{statistics.median(r.starts) if r.starts else float('nan'):>10.2f}"
            f"{pct(r.actions, 0.5):>9.3f}{pct(r.actions, 0.95):>9.3f}"
            f"{pct(r.lag, 0.5) * 1e3:>9.1f}{pct(r.lag, 0.95) * 1e3:>9.1f}"
            f"{max(r.lag, default=float('nan')) * 1e3:>9.1f}"
            f"{r.cpu_s / max(1, r.steps) * 1e3:>10.1f}{r.core_share:>7.2f}{r.desktop_cores:>7.2f}"
            f"{r.server_cores:>7.2f}"
            f"{r.host_busy:>6.0%}"
            f"{r.pss_desk:>10.1f}{r.pss_py:>8.0f}" + (f"  {r.note}" if r.note else "")
        )


def verdicts(rows: list[Row]) -> list[str]:
    out = []
    for label in sorted({r.label for r in rows}):
        mine = {r.n: r for r in rows if r.label == label}
        base = mine.get(1)
        for n, target in ((16, 1.2), (32, 1.5)):
            if base is not None and n in mine and base.actions:
                ratio = pct(mine[n].actions, 0.95) / pct(base.actions, 0.95)
                verdict = "PASS" if ratio <= target else "FAIL"
                out.append(f"{label}: act p95 N={n} / N=1 = {ratio:.2f} ({verdict}: <= {target})")
        worst_cpu = max(r.cpu_s / max(1, r.steps) * 1e3 for r in mine.values())
        out.append(
            f"{label}: cpu/step max {worst_cpu:.1f} ms ({'PASS' if worst_cpu <= 10 else 'FAIL'}: <= 10)"
        )
        pss = [r.pss_desk for r in mine.values() if r.pss_desk == r.pss_desk]
        if pss and label == "local":
            worst = max(pss)
            out.append(
                f"{label}: PSS/desktop max {worst:.1f} MB ({'PASS' if worst <= 50 else 'FAIL'}: <= 50)"
            )
    return out


async def amain(args: argparse.Namespace) -> int:
    from deskpilot.desktop.local import LocalDesktop

    # picklable, for run_many(processes=K)'s worker processes
    local = functools.partial(LocalDesktop, 1280, 800, apps=("terminal",))
    ns = [int(x) for x in args.n.split(",") if x.strip()]
    procs = [int(x) for x in args.processes.split(",") if x.strip()]
    LAG_METER_CPU_S[0] = await lag_meter_cpu_s()
    rows: list[Row] = []
    with model_server(args.latency) as (url, server_pid):
        kinds: list[tuple[str, Callable[[], Any]]] = [("local", local)]
        if args.remote:
            remote = remote_factory()
            if remote is None:
                print("remote: deskpilot.remote is not installed yet; rows skipped")
            else:
                kinds.append(("serve", remote))
        for label, make in kinds:
            for p in procs:
                if p > 1 and label != "local":
                    print(f"{label}: processes={p} is measured for local desktops only; skipped")
                    continue
                for n in ns:
                    row = await run_fleet(
                        label if p == 1 else f"{label} {p}proc",
                        n,
                        url=url,
                        server_pid=server_pid,
                        tasks_per_desktop=args.tasks,
                        make_desktop=make,
                        processes=p,
                    )
                    rows.append(row)
                    if args.verbose:
                        print_table([row])
    print(
        f"\nfleet_bench: {STEPS}-step scripted xterm task, {args.tasks} task(s) per desktop, "
        f"model latency {args.latency:g} s, {os.cpu_count()} cores, 1280x800; "
        f"lag meter {LAG_METER_CPU_S[0] * 1e6:.0f} us CPU per wake-up (left out of cpu/step)"
    )
    print_table(rows)
    print()
    for line in verdicts(rows):
        print(line)
    if args.shared_limit:
        print()
        for line in shared_limit_rows(args.limit_window):
            print(line)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                [
                    {
                        "label": r.label,
                        "n": r.n,
                        "tasks": r.tasks,
                        "ok": r.ok,
                        "tasks_per_min": r.tasks_per_min,
                        "start_p50_s": statistics.median(r.starts) if r.starts else None,
                        "act_p50_s": pct(r.actions, 0.5),
                        "act_p95_s": pct(r.actions, 0.95),
                        "lag_p50_ms": pct(r.lag, 0.5) * 1e3,
                        "lag_p95_ms": pct(r.lag, 0.95) * 1e3,
                        "cpu_ms_per_step": r.cpu_s / max(1, r.steps) * 1e3,
                        "cores": r.core_share,
                        "model_server_cores": r.server_cores,
                        "desktop_cores": r.desktop_cores,
                        "host_busy": r.host_busy,
                        "pss_mb_per_desktop": r.pss_desk,
                        "python_pss_mb": r.pss_py,
                    }
                    for r in rows
                ],
                indent=1,
            )
        )
    return 0 if all(r.ok == r.tasks for r in rows) else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", default="1,2,4,8,16,32", help="desktop counts, comma-separated")
    ap.add_argument("--tasks", type=int, default=2, help="tasks per desktop (default 2)")
    ap.add_argument("--latency", type=float, default=0.0, help="model latency in seconds")
    ap.add_argument("--remote", action="store_true", help="also through deskpilot serve")
    ap.add_argument(
        "--processes",
        default="1",
        help="run_many worker processes, comma-separated (e.g. 1,2); rows per value",
    )
    ap.add_argument("--shared-limit", action="store_true", help="the 4-process limit rows")
    ap.add_argument(
        "--limit-window", type=float, default=6.0, help="their window, s (60 = real minutes)"
    )
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    ap.add_argument("-v", "--verbose", action="store_true", help="print each row as it ends")
    ap.add_argument("--serve-model", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_model:
        serve_model(args.latency)
        return 0
    logging.basicConfig(level=logging.WARNING)
    return asyncio.run(amain(args))


if __name__ == "__main__":
    sys.exit(main())
