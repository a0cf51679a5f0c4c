"""Agent benchmark: loop overhead per step, and context cost per policy over one 40-step run.

Usage::

    python benchmarks/agent_bench.py            # FakeComputer (no X server needed)
    python benchmarks/agent_bench.py --desktop  # overhead on a real Xvfb desktop too
    python benchmarks/agent_bench.py --sweep    # also try several prune intervals

(1) Loop overhead: the same scripted 40-step run (a screenshot after every action) against the
fake model server with zero latency. ``overhead_s`` of each step is the step's wall time minus
the model call (``client.start``) and the tool actions, i.e. what the loop itself costs:
pruning, bookkeeping, screenshot files, trajectory line (fsync'd), callbacks.

(2) Context cost: the SAME 40-step run under three policies, each against a fresh fake server
whose simulated prompt cache (deskpilot.testing) reports ``cache_read_input_tokens`` /
``cache_creation_input_tokens`` like the API:
- deskpilot: keep the last 3 screenshots, prune in intervals, breakpoints on system+tools and
  the last 3 user turns;
- reference: caching on (system + last 3 user turns), NO pruning (anthropic_reference.md §3.6:
  the reference loop disables pruning whenever caching is on);
- baseline: no caching, no pruning.
Cost-weighted input = input x1 + cache reads x0.1 + cache writes x1.25.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from deskpilot import LLMClient
from deskpilot.agent.loop import DEFAULT_PRUNE_INTERVAL, Agent
from deskpilot.desktop.fake import FakeComputer
from deskpilot.testing import FakeModelServer, count_body_images, count_cache_breakpoints
from deskpilot.testing.wire import message_response, text_response, tool_use_block

MODEL = "claude-4-sonnet"
STEPS = 40
KEEP = 3

# A cycle of realistic actions; each returns a screenshot (screenshot_after_action).
_CYCLE = [
    {"action": "screenshot"},
    {"action": "left_click", "coordinate": [400, 300]},
    {"action": "type", "text": "hello world"},
    {"action": "key", "text": "Return"},
    {"action": "scroll", "coordinate": [640, 400], "scroll_direction": "down", "scroll_amount": 3},
    {"action": "mouse_move", "coordinate": [700, 500]},
]


def scripted_response(i: int) -> dict:
    """Response i (0-based) of the 40-step run: 39 tool calls, then a final answer."""
    if i >= STEPS - 1:
        return text_response("Finished the scripted task.")
    action = _CYCLE[i % len(_CYCLE)]
    return message_response(
        [
            {"type": "text", "text": f"Step {i + 1}: doing {action['action']}."},
            tool_use_block("computer", action, id=f"toolu_bench_{i:03d}"),
        ]
    )


async def run_policy(
    name: str, *, keep: int | None, interval: int, cache, computer_factory, out_dir
) -> dict:
    async with FakeModelServer(latency_s=0.0) as server:
        server.handler = lambda req: scripted_response(len(server.requests) - 1)
        async with LLMClient(
            MODEL, base_url=server.url, api_key="sk-bench-0000000000", progress="none"
        ) as client:
            computer = computer_factory()
            if hasattr(computer, "__aenter__"):
                computer = await computer.__aenter__()
            try:
                agent = Agent(
                    client,
                    computer,
                    keep_screenshots=keep,
                    prune_interval=interval,
                    cache=cache,
                    max_turns=STEPS,
                    out_dir=out_dir,
                )
                t0 = time.perf_counter()
                result = await agent.run("Do the scripted benchmark task.")
                wall = time.perf_counter() - t0
            finally:
                if hasattr(computer, "__aexit__"):
                    await computer.__aexit__(None, None, None)
        reqs = [r for r in server.requests if r.api == "anthropic"]
    usages = [r.usage or {} for r in reqs]
    inp = [u.get("input_tokens", 0) for u in usages]
    rd = [u.get("cache_read_input_tokens", 0) for u in usages]
    wr = [u.get("cache_creation_input_tokens", 0) for u in usages]
    carried = [a + b + c for a, b, c in zip(inp, rd, wr, strict=True)]
    weighted = [a + 0.1 * b + 1.25 * c for a, b, c in zip(inp, rd, wr, strict=True)]
    recs = result.step_records
    return {
        "name": name,
        "steps": result.steps,
        "stop": result.stop_reason,
        "requests": len(reqs),
        "carried": carried,
        "weighted": weighted,
        "input": sum(inp),
        "reads": sum(rd),
        "writes": sum(wr),
        "images": [count_body_images(r.body) for r in reqs],
        "breakpoints": max(count_cache_breakpoints(r.body) for r in reqs),
        "overhead": [s.timings.overhead_s for s in recs],
        "model": [s.timings.model_s for s in recs],
        "actions": [s.timings.actions_s for s in recs],
        "wall": wall,
    }


def desktop_like_image(width: int = 1280, height: int = 800):
    """A screenshot-like picture (flat background, windows with title bars, lines of text):
    it compresses like a real desktop (~100 kB PNG), unlike FakeComputer's default
    coordinate image, whose every pixel differs (~2.5 MB: 12 of them exceed the API's 32 MB
    request cap). Token counts depend only on the size, so they are unaffected."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (width, height), (58, 110, 165))
    d = ImageDraw.Draw(img)
    for k, (x, y, w, h) in enumerate([(40, 40, 700, 460), (520, 260, 700, 480)]):
        d.rectangle([x, y, x + w, y + h], fill=(250, 250, 250), outline=(30, 30, 30))
        d.rectangle([x, y, x + w, y + 24], fill=(200, 210, 225))
        d.text((x + 8, y + 6), f"Window {k + 1} - deskpilot benchmark", fill=(0, 0, 0))
        for line in range(h // 18 - 2):
            d.text(
                (x + 10, y + 34 + 18 * line),
                f"{line:3d}  lorem ipsum dolor {k * line}",
                fill=(20, 20, 20),
            )
    return img


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--desktop", action="store_true", help="also measure on a real Xvfb desktop")
    ap.add_argument("--sweep", action="store_true", help="try several prune intervals")
    ap.add_argument("--interval", type=int, default=DEFAULT_PRUNE_INTERVAL)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    tmp = Path(tempfile.mkdtemp(prefix="deskpilot-agent-bench-"))

    screen = desktop_like_image()

    def fake():
        return FakeComputer(1280, 800, image=screen)

    policies = [
        ("deskpilot", KEEP, args.interval, ["system_and_tools", "last_3_user_messages"]),
        ("reference", None, 1, ["system_and_tools", "last_3_user_messages"]),
        ("baseline", None, 1, None),
    ]
    rows = []
    for name, keep, interval, cache in policies:
        rows.append(
            await run_policy(
                name, keep=keep, interval=interval, cache=cache, computer_factory=fake, out_dir=tmp
            )
        )
    desk_row = None
    if args.desktop:
        from deskpilot.desktop.local import LocalDesktop

        desk_row = await run_policy(
            "deskpilot@xvfb",
            keep=KEEP,
            interval=args.interval,
            cache=policies[0][3],
            computer_factory=lambda: LocalDesktop(1280, 800),
            out_dir=tmp,
        )

    print(f"\nagent_bench: {STEPS}-step scripted run, model {MODEL} (legacy image tier), 1280x800")
    print("fake model server with zero latency; trajectories written to", tmp)
    print("\n(1) loop overhead per step, excluding model call and action time")
    print("    (all-in = (run wall time - model time - action time) / steps, i.e. including")
    print("    set-up, the initial screenshot and every fsync'd trajectory line)")
    print(
        f"{'computer':<16}{'median ms':>10}{'p90 ms':>9}{'max ms':>9}{'all-in ms':>10}"
        f"{'model ms':>10}{'action ms':>11}"
    )
    for r in [rows[0], *([desk_row] if desk_row else [])]:
        label = "FakeComputer" if r is rows[0] else "Xvfb desktop"
        print(
            f"{label:<16}{statistics.median(r['overhead']) * 1e3:>10.2f}"
            f"{pct(r['overhead'], 0.9) * 1e3:>9.2f}{max(r['overhead']) * 1e3:>9.2f}"
            f"{(r['wall'] - sum(r['model']) - sum(r['actions'])) / r['steps'] * 1e3:>10.2f}"
            f"{statistics.median(r['model']) * 1e3:>10.2f}{statistics.median(r['actions']) * 1e3:>11.2f}"
        )
    print(
        f"\n(2) input tokens per request and cost-weighted totals "
        f"(keep={KEEP}, prune_interval={args.interval}; weights: input 1, read 0.1, write 1.25)"
    )
    header = f"{'policy':<12}{'requests':>9}{'carried':>10}{'input':>9}{'reads':>9}{'writes':>9}{'weighted':>10}{'max img':>9}{'max bp':>8}"
    print(header)
    for r in rows:
        print(
            f"{r['name']:<12}{r['requests']:>9}{sum(r['carried']):>10}{r['input']:>9}{r['reads']:>9}"
            f"{r['writes']:>9}{sum(r['weighted']):>10.0f}{max(r['images']):>9}{r['breakpoints']:>8}"
        )
    print("\nper request (every 5th): tokens carried / cost-weighted")
    idx = [*range(0, STEPS, 5), STEPS - 1]
    print(f"{'request':<12}" + "".join(f"{i + 1:>14}" for i in idx))
    for r in rows:
        cells = "".join(
            f"{r['carried'][i]:>7}/{r['weighted'][i]:<6.0f}"
            if i < len(r["carried"])
            else f"{'-':>14}"
            for i in idx
        )
        print(f"{r['name']:<12}{cells}")
    d, ref = rows[0], rows[1]
    bound = KEEP + args.interval - 1
    ok_cost = sum(d["weighted"]) <= sum(ref["weighted"])
    ok_bound = max(d["images"]) <= bound
    print(
        f"\ndeskpilot / reference cost-weighted: {sum(d['weighted']) / sum(ref['weighted']):.2f}"
        f" ({'PASS' if ok_cost else 'FAIL'}: target <= 1.00); baseline / reference: "
        f"{sum(rows[2]['weighted']) / sum(ref['weighted']):.2f}"
    )
    print(
        f"max images in a deskpilot request: {max(d['images'])} (bound {bound}: {'PASS' if ok_bound else 'FAIL'})"
    )
    med = statistics.median(d["overhead"]) * 1e3
    print(f"loop overhead median {med:.2f} ms ({'PASS' if med <= 50 else 'FAIL'}: target <= 50 ms)")
    if args.sweep:
        print("\ninterval sweep (deskpilot policy, keep=3):")
        print(f"{'interval':>9}{'weighted':>10}{'vs ref':>8}{'max img':>9}")
        for k in (1, 2, 3, 5, 8, 10, 12, 15, 20, 25):
            r = await run_policy(
                f"k={k}",
                keep=KEEP,
                interval=k,
                cache=policies[0][3],
                computer_factory=fake,
                out_dir=None,
            )
            print(
                f"{k:>9}{sum(r['weighted']):>10.0f}{sum(r['weighted']) / sum(ref['weighted']):>8.2f}{max(r['images']):>9}"
            )
    return 0 if ok_cost and ok_bound and med <= 50 else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
