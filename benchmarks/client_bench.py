"""Client benchmark (issue #2, item 12): deskpilot vs a bare aiohttp loop vs LM Deluge.

Everything runs against ``deskpilot.testing``'s fake server in a SEPARATE process (so its CPU
is not counted as client CPU), and every client runs in its own subprocess (so CPU and peak
RSS are that client's alone). Scenarios:

(a) throughput: 2,000 and 20,000 short prompts, 200 concurrent, zero server latency:
    requests/s, client CPU ms per request (``getrusage`` user+sys of the client process over
    the ``process_prompts_async`` call), peak RSS (``ru_maxrss``). Median of ``--repeat``
    runs.
(b) RPM accuracy: 900 prompts at 600 RPM: the most requests in any 60 s window (server
    arrival times) and the steady rate (requests/min after the first 5 s).
(c) idle cost: client CPU while 20,000 prompts wait at 600 RPM, cut off after 20 s, as a
    share of one core.
(d) TPM: prompts of mixed size (some with a 1024x768 screenshot) against a server that
    enforces the same input-token limit: share of the budget used in real tokens
    (server-side usage: input + cache-write tokens, what ITPM counts) over the run
    (limit x run length in windows; a client that front-loads a whole window can exceed
    100% on a short run), the mean share of the limit in the complete windows after the
    first (steady state), the largest 60 s window against the limit, and 429s received.

``--quick`` shrinks everything for a CI smoke run (b and d then use a 10 s window with the
limits scaled to it: the same rates, six times faster to measure). ``--only a,c`` selects
scenarios. LM Deluge runs when it is importable (``pip install lm-deluge``); it cannot use a
window other than 60 s, so it is left out of quick (b) and (d).

Usage: ``python benchmarks/client_bench.py [--quick] [--only a,b,c,d] [--repeat N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import urllib.request
from typing import Any

FAKE_KEY = "sk-ant-fake-bench-key"
HERE = os.path.dirname(os.path.abspath(__file__))

# --- workers (each runs in its own process) --------------------------------------------------


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _prompt_texts(n: int, kind: str) -> list[str]:
    if kind == "tpm":
        # 500..1,250 tokens of text (chars/4), deterministic
        return [f"prompt {i}: " + "lorem ipsum " * (170 + (i * 37) % 250) for i in range(n)]
    return [f"Say hello to number {i}." for i in range(n)]


def _screenshot_png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (1024, 768), (40, 90, 160)).save(buf, format="PNG")
    return buf.getvalue()


async def _worker_deskpilot(args: argparse.Namespace) -> dict[str, Any]:
    from deskpilot import Conversation, LLMClient

    texts = _prompt_texts(args.n, args.prompts)
    png = _screenshot_png() if args.prompts == "tpm" else None
    convs = []
    for i, t in enumerate(texts):
        if png is not None and i % 3 == 0:
            convs.append(Conversation().user(t, image=png))
        else:
            convs.append(Conversation().user(t))
    settings: dict[str, Any] = {
        "max_requests_per_minute": args.rpm,
        "max_tokens_per_minute": args.tpm,
        "max_concurrent_requests": args.conc,
        "max_new_tokens": args.max_new_tokens,
        "base_url": args.url,
        "api_key": FAKE_KEY,
        "progress": "none",
        "request_timeout": 120.0,
    }
    if args.window != 60.0:
        settings["rate_window_s"] = args.window
    client = LLMClient(["claude-4-sonnet"], **settings)
    return await _measure(args, lambda: client.process_prompts_async(convs, show_progress=False))


async def _worker_lmdeluge(args: argparse.Namespace) -> dict[str, Any]:
    import logging

    logging.disable(logging.CRITICAL)
    os.environ["FAKE_ANTHROPIC_API_KEY"] = FAKE_KEY
    from lm_deluge import LLMClient
    from lm_deluge.models import register_model

    register_model(
        id="fake-claude",
        name="claude-fake",
        api_base=args.url + "/v1",
        api_key_env_var="FAKE_ANTHROPIC_API_KEY",
        api_spec="anthropic",
        regions=[],
    )
    client = LLMClient(
        "fake-claude",
        max_requests_per_minute=int(args.rpm),
        max_tokens_per_minute=int(args.tpm),
        max_concurrent_requests=args.conc,
        max_new_tokens=args.max_new_tokens,
        progress="manual",
    )
    texts = _prompt_texts(args.n, args.prompts)
    prompts: list[Any] = list(texts)
    if args.prompts == "tpm":
        from lm_deluge import Conversation

        png = _screenshot_png()
        prompts = [
            Conversation().user(t, image=png) if i % 3 == 0 else Conversation().user(t)
            for i, t in enumerate(texts)
        ]
    devnull = open(os.devnull, "w")  # LM Deluge prints; stdout must carry only our JSON
    real_stdout = sys.stdout
    sys.stdout = devnull
    try:
        return await _measure(
            args, lambda: client.process_prompts_async(prompts, show_progress=False)
        )
    finally:
        sys.stdout = real_stdout


async def _worker_aiohttp(args: argparse.Namespace) -> dict[str, Any]:
    """The same HTTP work with nothing else: one session, a semaphore, JSON in and out."""
    import aiohttp

    texts = _prompt_texts(args.n, args.prompts)
    url = args.url + "/v1/messages"
    headers = {
        "x-api-key": FAKE_KEY,
        "anthropic-version": "2023-06-01",
        "content-type": "application/json",
    }

    async def run() -> list[Any]:
        sem = asyncio.Semaphore(args.conc)
        connector = aiohttp.TCPConnector(limit=args.conc + 16)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def one(text: str) -> Any:
                body = {
                    "model": "claude-sonnet-4-20250514",
                    "max_tokens": args.max_new_tokens,
                    "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}],
                }
                async with sem, session.post(url, data=json.dumps(body), headers=headers) as r:
                    return await r.json()

            return await asyncio.gather(*(one(t) for t in texts))

    return await _measure(args, run)


async def _measure(args: argparse.Namespace, call: Any) -> dict[str, Any]:
    cpu0, t0 = _cpu_s(), time.perf_counter()
    task = asyncio.ensure_future(call())
    cut = False
    if args.cutoff:
        done, _ = await asyncio.wait({task}, timeout=args.cutoff)
        cut = not done
    results = None if cut else await task
    wall, cpu = time.perf_counter() - t0, _cpu_s() - cpu0
    ok = errors = 0
    if results is not None:
        for r in results:
            is_err = getattr(r, "is_error", None)
            if is_err is None:
                is_err = not (isinstance(r, dict) and r.get("type") == "message")
            errors += bool(is_err)
            ok += not is_err
    return {
        "n": args.n,
        "ok": ok,
        "errors": errors,
        "wall_s": wall,
        "cpu_s": cpu,
        "rss_mb": _rss_mb(),
        "cut_off": cut,
    }


def worker_main(args: argparse.Namespace) -> None:
    fn = {
        "deskpilot": _worker_deskpilot,
        "aiohttp": _worker_aiohttp,
        "lmdeluge": _worker_lmdeluge,
    }[args.worker]
    result = asyncio.run(fn(args)) if not args.cutoff else _run_cut(fn, args)
    sys.stdout.write("RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()
    os._exit(0)  # skip slow interpreter teardown (and any pending tasks after a cut-off)


def _run_cut(fn: Any, args: argparse.Namespace) -> dict[str, Any]:
    loop = asyncio.new_event_loop()
    return loop.run_until_complete(fn(args))


# --- orchestration --------------------------------------------------------------------------


class Server:
    """The fake server in its own process, reset and read over its control endpoints."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "deskpilot.testing.fake_server", "--port", "0", "--no-record"],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("FAKE_SERVER_URL="):
            raise RuntimeError(f"the fake server did not start: {line!r}")
        self.url = line.split("=", 1)[1]

    def reset(
        self,
        *,
        rpm_limit: int | None = None,
        itpm_limit: int | None = None,
        otpm_limit: int | None = None,
        window_s: float = 60.0,
    ) -> None:
        """Clear the server's records and set its limits (None = not enforced)."""
        cfg = {
            "rpm_limit": rpm_limit,
            "itpm_limit": itpm_limit,
            "otpm_limit": otpm_limit,
            "window_s": window_s,
        }
        req = urllib.request.Request(
            self.url + "/_fake/reset",
            data=json.dumps(cfg).encode(),
            headers={"content-type": "application/json"},
        )
        urllib.request.urlopen(req, timeout=30).read()

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "/_fake/stats", timeout=60) as r:
            return json.loads(r.read())

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def run_worker(kind: str, url: str, **kw: Any) -> dict[str, Any]:
    cmd = [sys.executable, os.path.join(HERE, "client_bench.py"), "--worker", kind, "--url", url]
    for k, v in kw.items():
        cmd += [f"--{k.replace('_', '-')}", str(v)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"{kind} worker failed (rc {out.returncode}): {out.stderr[-2000:]}")


def steady_rate(times: list[float], skip_s: float, per_s: float) -> float:
    """Requests per ``per_s`` after the first ``skip_s`` seconds (count / span)."""
    if not times:
        return 0.0
    t0 = times[0] + skip_s
    rest = [t for t in times if t >= t0]
    if len(rest) < 2:
        return 0.0
    return (len(rest) - 1) / (rest[-1] - rest[0]) * per_s


def have_lmdeluge() -> bool:
    return importlib.util.find_spec("lm_deluge") is not None


def table(title: str, header: list[str], rows: list[list[Any]]) -> str:
    cells = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = [f"\n{title}", "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for r in cells[1:]:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    return "\n".join(lines)


def scenario_a(server: Server, sizes: list[int], repeat: int, clients: list[str]) -> str:
    """Runs are interleaved (d, a, l, d, a, l, ...) so load drift hits every client alike."""
    rows = []
    for n in sizes:
        runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in clients}
        for _ in range(repeat):
            for kind in clients:
                server.reset()
                res = run_worker(kind, server.url, n=n, conc=200, rpm=10_000_000, tpm=1_000_000_000)
                runs[kind].append(res)
                print(
                    f"  (a) n={n} {kind}: {n / res['wall_s']:.0f} req/s, "
                    f"{res['cpu_s'] * 1000 / n:.3f} CPU ms/req, {res['rss_mb']:.0f} MB",
                    file=sys.stderr,
                    flush=True,
                )
        for kind in clients:
            med = {
                k: statistics.median(r[k] for r in runs[kind])
                for k in ("wall_s", "cpu_s", "rss_mb")
            }
            per_run = "/".join(f"{r['cpu_s'] * 1000 / n:.3f}" for r in runs[kind])
            base = runs.get("aiohttp")
            paired = (
                f"{statistics.median(r['cpu_s'] / b['cpu_s'] for r, b in zip(runs[kind], base, strict=True)):.2f}x"
                if base
                else "-"
            )
            rows.append(
                [
                    n,
                    kind,
                    len(runs[kind]),
                    f"{n / med['wall_s']:.0f}",
                    f"{med['cpu_s'] * 1000 / n:.3f}",
                    per_run,
                    paired,
                    f"{med['rss_mb']:.0f}",
                    f"{min(r['ok'] for r in runs[kind])}/{n}",
                ]
            )
    return table(
        "(a) throughput, 200 concurrent, zero latency (medians; runs interleaved)",
        [
            "prompts",
            "client",
            "runs",
            "req/s",
            "CPU ms/req",
            "each run",
            "CPU vs aiohttp (paired)",
            "peak RSS MB",
            "ok",
        ],
        rows,
    )


def scenario_b(
    server: Server, n: int, rpm: int, window: float, clients: list[tuple[str, bool]]
) -> str:
    """``clients``: (kind, enforce); with enforce the server applies the same RPM limit and
    sends ``anthropic-ratelimit-*`` headers, as the real API does."""
    from deskpilot.testing import most_in_window

    rows = []
    for kind, enforce in clients:
        server.reset(rpm_limit=rpm if enforce else None, window_s=window)
        res = run_worker(kind, server.url, n=n, conc=200, rpm=rpm, tpm=1_000_000_000, window=window)
        st = server.stats()
        times = sorted(st["arrivals"])
        rows.append(
            [
                kind + (" vs enforcing server" if enforce else ""),
                n,
                f"{rpm}/{window:g}s",
                most_in_window(times, window),
                f"{steady_rate(times, 5.0 * window / 60, window):.1f}",
                f"{sum(1 for t in times if t < 1.0)}",
                st["rate_limited"],
                f"{res['wall_s']:.1f}",
                f"{res['cpu_s']:.2f}",
            ]
        )
        print(f"  (b) {kind}: {rows[-1]}", file=sys.stderr, flush=True)
    return table(
        "(b) RPM accuracy (server arrival times)",
        [
            "client",
            "prompts",
            "limit",
            "max in any window",
            "steady per window",
            "sent in 1st s",
            "429s",
            "wall s",
            "CPU s",
        ],
        rows,
    )


def scenario_c(server: Server, n: int, rpm: int, cutoff: float, clients: list[str]) -> str:
    rows = []
    for kind in clients:
        server.reset()
        res = run_worker(kind, server.url, n=n, conc=200, rpm=rpm, tpm=1_000_000_000, cutoff=cutoff)
        sent = server.stats()["total"]
        rows.append(
            [kind, n, rpm, f"{res['wall_s']:.1f}", f"{res['cpu_s']:.2f}",
             f"{100 * res['cpu_s'] / res['wall_s']:.1f}%", sent, f"{res['rss_mb']:.0f}"]
        )  # fmt: skip
        print(f"  (c) {kind}: {rows[-1]}", file=sys.stderr, flush=True)
    return table(
        "(c) client CPU while prompts wait on the RPM limit",
        ["client", "queued", "RPM", "wall s", "CPU s", "share of a core", "sent", "RSS MB"],
        rows,
    )


def scenario_d(server: Server, n: int, itpm: int, window: float, clients: list[str]) -> str:
    rows = []
    for kind in clients:
        server.reset(itpm_limit=itpm, window_s=window)
        res = run_worker(
            kind,
            server.url,
            n=n,
            conc=50,
            rpm=10_000_000,
            tpm=itpm,
            window=window,
            prompts="tpm",
            max_new_tokens=100,
        )
        st = server.stats()
        served = sorted((t, i) for t, i, _ in st["served"])
        times = [t for t, _ in served]
        tokens = sum(i for _, i in served)
        span = (times[-1] - times[0]) if len(times) > 1 else 0.0
        # budget over the run: the limit times the run's length in windows
        budget = itpm * span / window if span else itpm
        # steady state: mean share of the limit over the complete windows after the first
        t_first = times[0] if times else 0.0
        shares = []
        k = 1
        while times and t_first + (k + 1) * window <= times[-1]:
            lo, hi = t_first + k * window, t_first + (k + 1) * window
            shares.append(sum(i for t, i in served if lo <= t < hi) / itpm)
            k += 1
        steady = f"{100 * statistics.mean(shares):.1f}%" if shares else "n/a"
        best = 0
        j = 0
        acc = 0
        for t, i in served:
            acc += i
            while served[j][0] <= t - window:
                acc -= served[j][1]
                j += 1
            best = max(best, acc)
        rows.append(
            [
                kind,
                n,
                f"{itpm}/{window:g}s",
                tokens,
                f"{100 * tokens / budget:.1f}%" if span > window else "n/a (run < window)",
                steady,
                f"{100 * best / itpm:.1f}%",
                st["rate_limited"],
                f"{res['ok']}/{n}",
                f"{res['wall_s']:.1f}",
            ]
        )
        print(f"  (d) {kind}: {rows[-1]}", file=sys.stderr, flush=True)
    return table(
        "(d) input-TPM limited run vs a server enforcing the same limit",
        [
            "client",
            "prompts",
            "ITPM",
            "real input tokens",
            "budget used (run)",
            "windows after 1st",
            "max window / limit",
            "429s",
            "ok",
            "wall s",
        ],
        rows,
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    p.add_argument("--quick", action="store_true", help="small sizes, for a CI smoke run")
    p.add_argument("--only", default="a,b,c,d", help="comma-separated scenarios (a,b,c,d)")
    p.add_argument("--repeat", type=int, default=None, help="runs per (a) cell (median)")
    p.add_argument("--no-lmdeluge", action="store_true", help="leave LM Deluge out")
    # worker-side options (internal)
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--url", default=None, help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--conc", type=int, default=200, help=argparse.SUPPRESS)
    p.add_argument("--rpm", type=float, default=1e7, help=argparse.SUPPRESS)
    p.add_argument("--tpm", type=float, default=1e9, help=argparse.SUPPRESS)
    p.add_argument("--window", type=float, default=60.0, help=argparse.SUPPRESS)
    p.add_argument("--cutoff", type=float, default=0.0, help=argparse.SUPPRESS)
    p.add_argument("--prompts", default="short", help=argparse.SUPPRESS)
    p.add_argument("--max-new-tokens", type=int, default=64, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker_main(args)
        return 0

    only = {s.strip() for s in args.only.split(",") if s.strip()}
    lmd = have_lmdeluge() and not args.no_lmdeluge
    clients = ["deskpilot", "aiohttp"] + (["lmdeluge"] if lmd else [])
    repeat = args.repeat or (1 if args.quick else 3)
    server = Server()
    out = [
        f"client_bench ({'quick' if args.quick else 'full'}); fake server {server.url} in its own "
        f"process; LM Deluge {'included' if lmd else 'not installed / excluded'}; "
        f"{os.cpu_count()} CPUs"
    ]
    try:
        if "a" in only:
            sizes = [500, 2000] if args.quick else [2000, 20000]
            out.append(scenario_a(server, sizes, repeat, clients))
        rate_clients = [c for c in clients if c != "aiohttp"]
        if "b" in only:
            if args.quick:  # same rate (600/min), 10 s window
                out.append(
                    scenario_b(server, 150, 100, 10.0, [("deskpilot", False), ("deskpilot", True)])
                )
            else:
                b_clients = [("deskpilot", False), ("deskpilot", True)]
                b_clients += [(c, False) for c in rate_clients if c != "deskpilot"]
                out.append(scenario_b(server, 900, 600, 60.0, b_clients))
        if "c" in only:
            cutoff = 5.0 if args.quick else 20.0
            out.append(scenario_c(server, 20000, 600, cutoff, rate_clients))
        if "d" in only:
            if args.quick:  # 60k ITPM scaled to a 10 s window
                out.append(scenario_d(server, 40, 10_000, 10.0, ["deskpilot"]))
            else:
                out.append(scenario_d(server, 120, 60_000, 60.0, rate_clients))
    finally:
        server.close()
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
