"""Desktop benchmark: deskpilot's X11 backend vs the reference implementation's method.

Runs both side by side on the same fresh Xvfb desktops in one process and prints one table of
medians (seconds unless noted) with ratios. The reference's method is re-implemented
faithfully from its ``computer_use_demo/tools/`` (``computer.py``, ``bash.py``) in
https://github.com/anthropics/claude-quickstarts:

* screenshot: ``scrot -p FILE`` then ``/usr/bin/convert FILE -resize WxH! FILE`` (it always
  resizes, to 1366x768 for 1920x1080), file read back;
* click: ``xdotool mousemove --sync X Y click 1``, a fixed ``asyncio.sleep(2.0)``, screenshot;
* key: ``xdotool key -- ctrl+e``, the 2.0 s sleep, screenshot;
* type: ``xdotool type --delay 12 -- CHUNK`` per 50-character chunk (no sleep), screenshot;
* bash: ``/bin/bash`` with pipes, ``"{cmd}; echo '<<exit>>'\\n"`` written, StreamReader's
  buffer polled every 0.2 s for the sentinel.

Ours: :class:`deskpilot.LocalDesktop` (mss capture + Pillow PNG, XTEST input, settle
detector), typing via keymap assignment, and :class:`deskpilot.BashTool` when present.

Usage::

    python benchmarks/desktop_bench.py            # N=20 ours, 5 reference runs of slow rows
    python benchmarks/desktop_bench.py --quick    # N=5 / 2
    python benchmarks/desktop_bench.py -n 30 --ref-runs 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from deskpilot.desktop.local import LocalDesktop, merged_env

CONVERT = "/usr/bin/convert"  # `convert` on PATH may be a slow stand-in on some machines
REFERENCE_DELAY_S = 2.0
TYPING_GROUP_SIZE = 50
TYPING_DELAY_MS = 12
NON_ASCII = "éüñßøåçλπΩЖж€→✓☺日本語中文한국어¿½°"
ASCII = (
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?-_=+*/()[]{}<>@#$%^&|~"
)


def mixed_text(seed: int, n: int = 200, share: float = 0.3) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice(NON_ASCII if rng.random() < share else ASCII) for _ in range(n))


def reference_target(w: int, h: int) -> tuple[int, int]:
    """The reference's scale target (its ``computer.py``: XGA, WXGA or FWXGA, whichever has
    the display's aspect ratio and is smaller than it)."""
    ratio = w / h
    for tw, th in ((1024, 768), (1280, 800), (1366, 768)):
        if abs(tw / th - ratio) < 0.02:
            return (tw, th) if tw < w else (w, h)
    return w, h


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


# ---------------------------------------------------------------- reference method
async def run(argv: list[str], env: dict[str, str]) -> tuple[int, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    return proc.returncode or 0, out, err


async def ref_screenshot(env: dict[str, str], size: tuple[int, int], tmp: Path) -> bytes:
    path = tmp / f"screenshot_{time.monotonic_ns()}.png"
    await run(["scrot", "-o", "-p", str(path)], env)
    tw, th = reference_target(*size)
    await run([CONVERT, str(path), "-resize", f"{tw}x{th}!", str(path)], env)
    data = path.read_bytes()
    path.unlink()
    return data


class ReferenceBash:
    """The reference's _BashSession (0.2 s polling of the StreamReader buffer)."""

    sentinel = "<<exit>>"

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_shell(
            "/bin/bash",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )

    async def run(self, command: str) -> str:
        assert self.proc.stdin and self.proc.stdout and self.proc.stderr
        self.proc.stdin.write(command.encode() + f"; echo '{self.sentinel}'\n".encode())
        await self.proc.stdin.drain()
        async with asyncio.timeout(120.0):
            while True:
                await asyncio.sleep(0.2)
                output = self.proc.stdout._buffer.decode()  # type: ignore[attr-defined]
                if self.sentinel in output:
                    output = output[: output.index(self.sentinel)]
                    break
        self.proc.stdout._buffer.clear()  # type: ignore[attr-defined]
        self.proc.stderr._buffer.clear()  # type: ignore[attr-defined]
        return output.removesuffix("\n")

    async def stop(self) -> None:
        # (the reference only terminates bash; we end the whole group so nothing lingers)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        await self.proc.wait()


# ---------------------------------------------------------------- helpers
async def wait_file(path: Path, expected: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists():
            try:
                if path.read_text(encoding="utf-8") == expected:
                    return True
            except UnicodeDecodeError:
                pass
        await asyncio.sleep(0.002)
    return False


async def fill_terminal(desktop: LocalDesktop) -> None:
    await desktop.type_text("ls -la /usr/lib /usr/bin | head -80\n")
    await desktop.wait_settled(timeout_s=2.0)


rows: list[tuple[str, str, str, str, str]] = []


def add(name: str, ours: float | None, ref: float | None, note: str = "") -> None:
    ratio = f"{ref / ours:.1f}x" if ours and ref and ours > 0 else "n/a"
    fo = f"{ours * 1000:.1f} ms" if ours is not None else "n/a"
    fr = f"{ref * 1000:.1f} ms" if ref is not None else "n/a"
    rows.append((name, fo, fr, ratio, note))
    print(f"  {name}: ours {fo}, reference {fr} ({ratio}) {note}", flush=True)


# ---------------------------------------------------------------- sections
async def bench_screenshots(n: int, ref_n: int, tmp: Path) -> None:
    for size in ((1024, 768), (1280, 800), (1920, 1080)):
        async with LocalDesktop(*size, apps=("terminal",)) as d:
            await fill_terminal(d)
            env = merged_env(d)
            ours, sizes = [], []
            for _ in range(n):
                t = time.perf_counter()
                data = await d.screenshot_bytes("png")
                ours.append(time.perf_counter() - t)
                sizes.append(len(data))
            ours_resized = []
            if reference_target(*size) != size:
                from PIL import Image

                from deskpilot.desktop.capture import encode

                for _ in range(n):
                    t = time.perf_counter()
                    img = await d.screenshot()
                    small = await asyncio.to_thread(
                        img.resize, reference_target(*size), Image.Resampling.BILINEAR
                    )
                    await asyncio.to_thread(encode, small, "png")
                    ours_resized.append(time.perf_counter() - t)
            ref, ref_sizes = [], []
            for _ in range(max(ref_n, min(n, 10))):
                t = time.perf_counter()
                data = await ref_screenshot(env, size, tmp)
                ref.append(time.perf_counter() - t)
                ref_sizes.append(len(data))
            label = f"screenshot capture+encode {size[0]}x{size[1]}"
            add(
                label,
                med(ours),
                med(ref),
                f"PNG {med(sizes) / 1000:.0f} kB vs {med(ref_sizes) / 1000:.0f} kB "
                f"(reference resizes to {'x'.join(map(str, reference_target(*size)))})",
            )
            if ours_resized:
                add(
                    f"  ... ours incl. resize to {'x'.join(map(str, reference_target(*size)))}",
                    med(ours_resized),
                    med(ref),
                    "Pillow BILINEAR + PNG",
                )


async def bench_actions(n: int, ref_n: int, tmp: Path) -> None:
    async with LocalDesktop(1280, 800, apps=("terminal",)) as d:
        env = merged_env(d)
        # click on the empty desktop background: a static screen
        ours = []
        for i in range(n):
            t = time.perf_counter()
            await d.click(1000 + (i % 5) * 10, 700)
            await d.screenshot_bytes("png")
            ours.append(time.perf_counter() - t)
        ref = []
        for i in range(ref_n):
            t = time.perf_counter()
            await run(
                ["xdotool", "mousemove", "--sync", str(1100 + i * 7), "720", "click", "1"], env
            )
            await asyncio.sleep(REFERENCE_DELAY_S)
            await ref_screenshot(env, d.size, tmp)
            ref.append(time.perf_counter() - t)
        add(
            "click -> settled screenshot (static screen)",
            med(ours),
            med(ref),
            "ref: 2.0 s fixed sleep",
        )

        # click into the terminal (the screen changes: cursor/focus)
        ours = []
        for _ in range(n):
            t = time.perf_counter()
            await d.click(400, 300)
            await d.screenshot_bytes("png")
            ours.append(time.perf_counter() - t)
        add("click into xterm -> settled screenshot", med(ours), None, "")

        # key: ctrl+e in the focused xterm (moves the caret: small change)
        ours = []
        for _ in range(n):
            t = time.perf_counter()
            await d.key("ctrl+e")
            await d.screenshot_bytes("png")
            ours.append(time.perf_counter() - t)
        ref = []
        for _ in range(ref_n):
            t = time.perf_counter()
            await run(["xdotool", "key", "--", "ctrl+e"], env)
            await asyncio.sleep(REFERENCE_DELAY_S)
            await ref_screenshot(env, d.size, tmp)
            ref.append(time.perf_counter() - t)
        add("key ctrl+e -> settled screenshot", med(ours), med(ref), "")

        # key that changes the screen a lot: clear the terminal
        ours = []
        for _ in range(min(n, 10)):
            await d.type_text("ls -la /usr/lib | head -40\n")
            await d.wait_settled()
            t = time.perf_counter()
            await d.key("ctrl+l")
            await d.screenshot_bytes("png")
            ours.append(time.perf_counter() - t)
        add("key ctrl+l (clears xterm) -> settled screenshot", med(ours), None, "")

        # typing 200 mixed characters, read back from the file the shell in xterm writes
        out = tmp / "typed"
        out.mkdir(exist_ok=True)
        ours, ok = [], 0
        for trial in range(max(n, 20)):
            text = mixed_text(trial)
            target = out / f"o{trial}.txt"
            t = time.perf_counter()
            await d.type_text(f"printf '%s' '{text}' > {target}\n")
            good = await wait_file(target, text, 3.0)
            ours.append(time.perf_counter() - t)
            ok += good
        ours_total = len(ours)
        ref, ref_ok = [], 0
        for trial in range(ref_n):
            text = mixed_text(1000 + trial)
            target = out / f"r{trial}.txt"
            full = f"printf '%s' '{text}' > {target}\n"
            t = time.perf_counter()
            for i in range(0, len(full), TYPING_GROUP_SIZE):
                chunk = full[i : i + TYPING_GROUP_SIZE]
                await run(["xdotool", "type", "--delay", str(TYPING_DELAY_MS), "--", chunk], env)
            good = await wait_file(target, text, 3.0)
            ref.append(time.perf_counter() - t)
            ref_ok += good
            if not good:
                await d.key("ctrl+c")  # a dropped quote leaves the shell waiting
                await asyncio.sleep(0.2)
        add(
            "type 200 mixed chars (until the file is right)",
            med(ours),
            med(ref),
            f"correct: ours {ok}/{ours_total} (max {max(ours) * 1000:.0f} ms), "
            f"reference {ref_ok}/{len(ref)}",
        )


async def bench_bash(n: int, ref_n: int) -> None:
    ours: list[float] = []
    try:
        from deskpilot.computer_use.bash import BashTool
        from deskpilot.prompt import ToolCall
    except ImportError:
        BashTool = None
    if BashTool is not None:
        async with BashTool() as bash:
            await bash.execute(ToolCall("warm", "bash", {"command": "true"}))
            for i in range(n):
                t = time.perf_counter()
                res = await bash.execute(ToolCall(f"c{i}", "bash", {"command": "echo hi"}))
                ours.append(time.perf_counter() - t)
                assert not res.is_error, res
    ref_bash = ReferenceBash()
    await ref_bash.start()
    ref = []
    try:
        await ref_bash.run("true")
        for _ in range(max(ref_n, 5)):
            t = time.perf_counter()
            assert await ref_bash.run("echo hi") == "hi"
            ref.append(time.perf_counter() - t)
    finally:
        await ref_bash.stop()
    add("bash `echo hi` round trip", med(ours) if ours else None, med(ref), "")


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=20, help="runs of our fast rows (median)")
    ap.add_argument("--ref-runs", type=int, default=5, help="runs of the reference's slow rows")
    ap.add_argument("--quick", action="store_true", help="n=5, ref-runs=2")
    ap.add_argument("--only", choices=["screenshots", "actions", "bash"], default=None)
    args = ap.parse_args()
    n, ref_n = (5, 2) if args.quick else (args.n, args.ref_runs)
    for program in ("Xvfb", "openbox", "xterm", "scrot", "xdotool"):
        if shutil.which(program) is None:
            sys.exit(f"{program} is missing; run: bash scripts/install-desktop-deps.sh")
    if not os.path.exists(CONVERT):
        sys.exit(f"{CONVERT} is missing; run: bash scripts/install-desktop-deps.sh")
    print(f"desktop benchmark: n={n}, reference runs={ref_n}, cores={os.cpu_count()}")
    tmp = Path(tempfile.mkdtemp(prefix="deskpilot-bench-"))
    try:
        if args.only in (None, "screenshots"):
            await bench_screenshots(n, ref_n, tmp)
        if args.only in (None, "actions"):
            await bench_actions(n, ref_n, tmp)
        if args.only in (None, "bash"):
            await bench_bash(n, ref_n)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    header = ("metric (median)", "deskpilot", "reference", "speed-up", "notes")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    line = " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    print(line)
    print("-+-".join("-" * w for w in widths))
    for r in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    asyncio.run(main())
