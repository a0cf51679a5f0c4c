"""Token-count benchmark: deskpilot's input-token estimate beside the exact count.

The exact count is ``LLMClient.count_tokens`` against the fake server's count endpoint
(``deskpilot.testing``: the same counter its ``usage`` comes from, so "exact" here means the
fake's rule, characters / 4 for text, ``w*h/750`` for images, fixed tool overheads). The
estimate is what the scheduler reserves without ``exact_token_counts``
(:func:`deskpilot.client.tokens.estimate_input_tokens` with the request's tool overhead).

Corpus:
(1) the client bench's prompts (``benchmarks/client_bench.py``): the short ones ("Say hello
    to number i.") and the input-TPM ones (500-1,250 tokens of text), each without and with a
    1024x768 screenshot;
(2) the agent bench's 40-step conversations (``benchmarks/agent_bench.py``: the scripted run
    on a FakeComputer, one screenshot per step, computer-use tools), under its "deskpilot"
    policy (keep 3 screenshots, pruned in intervals) and its "reference" policy (no
    pruning): every request the agent sent.

For each request: relative error = (estimate - exact) / exact. Printed per group: median,
p90 and max of |error|, the median signed error (positive: the estimate is high) and the
median absolute error in tokens. With
``--exact-mode`` it also runs the agent with ``exact_token_counts=True`` and reports the
error of what the scheduler reserved then (cached prefix + estimate of the new turn, or a
count) and how many count requests it sent.

Usage: ``python benchmarks/count_bench.py [--n 60] [--exact-mode]``.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import logging
import statistics
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

from agent_bench import KEEP, MODEL, STEPS, desktop_like_image, scripted_response
from client_bench import _prompt_texts, _screenshot_png

from deskpilot import Conversation, LLMClient
from deskpilot.agent.loop import DEFAULT_PRUNE_INTERVAL, Agent
from deskpilot.client.tokens import estimate_input_tokens
from deskpilot.desktop.fake import FakeComputer
from deskpilot.providers.tools import build_toolset
from deskpilot.testing import FakeModel


class RecordingClient(LLMClient):
    """An LLMClient that keeps a copy of every ``start`` request and its options, and the
    input tokens its scheduler reserved for it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent: list[tuple[Conversation, dict[str, Any]]] = []
        self.reserved: list[float] = []
        acquire = self.limiter.acquire

        async def recording_acquire(input_tokens: float = 0, output_tokens: float = 0) -> Any:
            if input_tokens:
                self.reserved.append(input_tokens)
            return await acquire(input_tokens, output_tokens)

        self.limiter.acquire = recording_acquire

    async def start(self, prompt: Any, **kw: Any) -> Any:
        self.sent.append((copy.deepcopy(prompt), dict(kw)))
        return await super().start(prompt, **kw)


def estimate(client: LLMClient, conv: Conversation, options: dict[str, Any]) -> int:
    """What the scheduler reserves for ``conv`` without exact counts."""
    kw = {k: v for k, v in options.items() if k != "model"}
    opts = client._options(kw, "count_bench")
    spec = client.model_spec(options.get("model"))
    toolset = build_toolset(spec, spec.provider, opts)
    return estimate_input_tokens(
        conv, tier=spec.image_tier, system=opts.system, tool_overhead=toolset.overhead_tokens
    )


def fake_client(fake: FakeModel, cls: type[LLMClient] = LLMClient, **kw: Any) -> Any:
    return cls(
        MODEL,
        environ=fake.env(),
        transport=fake.transport(),
        progress="none",
        max_requests_per_minute=1_000_000,
        max_tokens_per_minute=None,
        **kw,
    )


async def client_corpus(n: int) -> list[tuple[str, int, int]]:
    """``(group, estimate, exact)`` for the client bench's prompts."""
    png = _screenshot_png()
    rows: list[tuple[str, int, int]] = []
    fake = FakeModel()
    async with fake_client(fake) as client:
        for kind in ("short", "tpm"):
            texts = _prompt_texts(n, kind)
            for shot in (False, True):
                convs = [Conversation().user(t, image=png if shot else None) for t in texts]
                exact = await client.count_tokens(convs)
                group = f"client bench, {kind} prompts, {'with' if shot else 'no'} screenshot"
                rows.extend(
                    (group, estimate(client, c, {}), e) for c, e in zip(convs, exact, strict=True)
                )
    return rows


async def agent_run(
    keep: int | None, interval: int, exact_mode: bool = False
) -> tuple[RecordingClient, FakeModel]:
    """The agent bench's scripted 40-step run; returns the recording client and the fake."""
    fake = FakeModel()
    answered = [0]

    def handler(_req: Any) -> Any:
        answered[0] += 1
        return scripted_response(answered[0] - 1)

    fake.handler = handler
    screen = desktop_like_image()
    client = fake_client(fake, RecordingClient, exact_token_counts=exact_mode)
    async with client:
        agent = Agent(
            client,
            FakeComputer(1280, 800, image=screen),
            keep_screenshots=keep,
            prune_interval=interval,
            cache=None,
            max_turns=STEPS,
            out_dir=None,
        )
        await agent.run("Do the scripted benchmark task.")
    return client, fake


async def agent_corpus() -> list[tuple[str, int, int]]:
    rows: list[tuple[str, int, int]] = []
    for name, keep, interval in (
        ("deskpilot", KEEP, DEFAULT_PRUNE_INTERVAL),
        ("reference", None, 1),
    ):
        recorded, _ = await agent_run(keep, interval)
        fake = FakeModel()
        async with fake_client(fake) as client:
            for conv, options in recorded.sent:
                kw = {k: v for k, v in options.items() if k != "model"}
                [exact] = await client.count_tokens(conv, **kw)
                rows.append((f"agent bench, 40 steps, {name}", estimate(client, conv, kw), exact))
    return rows


def summary(rows: list[tuple[str, int, int]]) -> list[str]:
    groups: dict[str, list[tuple[int, int]]] = {}
    for group, est, exact in rows:
        groups.setdefault(group, []).append((est, exact))
    groups["all requests"] = [(est, exact) for _, est, exact in rows]
    out = [
        f"{'group':<52}{'n':>5}{'median |err|':>14}{'p90 |err|':>11}{'max |err|':>11}"
        f"{'median err':>12}{'median |err| tokens':>21}"
    ]
    for group, pairs in groups.items():
        errs = [(est - exact) / exact for est, exact in pairs]
        mags = sorted(abs(e) for e in errs)
        p90 = mags[min(len(mags) - 1, int(0.9 * len(mags)))]
        tokens = statistics.median(abs(est - exact) for est, exact in pairs)
        out.append(
            f"{group:<52}{len(errs):>5}{100 * statistics.median(mags):>13.1f}%{100 * p90:>10.1f}%"
            f"{100 * mags[-1]:>10.1f}%{100 * statistics.median(errs):>+11.1f}%{tokens:>21.0f}"
        )
    return out


async def exact_mode_report() -> list[str]:
    """The agent with ``exact_token_counts=True``: reservation error and count requests."""
    out = []
    for name, keep, interval in (
        ("deskpilot", KEEP, DEFAULT_PRUNE_INTERVAL),
        ("reference", None, 1),
    ):
        client, fake = await agent_run(keep, interval, exact_mode=True)
        answered = [r for r in fake.requests if r.api == "anthropic"]
        charged = [
            (r.usage or {}).get("input_tokens", 0)
            + (r.usage or {}).get("cache_read_input_tokens", 0)
            + (r.usage or {}).get("cache_creation_input_tokens", 0)
            for r in answered
        ]
        errs = [(res - c) / c for res, c in zip(client.reserved, charged, strict=True)]
        mags = sorted(abs(e) for e in errs)
        counts = sum(1 for r in fake.requests if r.api == "count_tokens")
        out.append(
            f"{name:<12} requests {len(answered):>3}  count requests {counts:>3}  reservation "
            f"|err| median {100 * statistics.median(mags):.1f}%, p90 "
            f"{100 * mags[min(len(mags) - 1, int(0.9 * len(mags)))]:.1f}%, max {100 * mags[-1]:.1f}%"
        )
    return out


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=60, help="client-bench prompts per group")
    ap.add_argument("--exact-mode", action="store_true", help="also run exact_token_counts=True")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows = await client_corpus(args.n) + await agent_corpus()
    print(f"\ncount_bench: deskpilot's estimate vs the fake server's exact count ({MODEL})")
    print("relative error = (estimate - exact) / exact, per request\n")
    print("\n".join(summary(rows)))
    if args.exact_mode:
        print("\nexact_token_counts=True, the agent bench's 40-step run (reserved vs charged):")
        print("\n".join(await exact_mode_report()))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
