"""The ``deskpilot eval`` command (click): run a task suite and score it; ``eval compare``.

``deskpilot eval SUITE`` (a directory of OSWorld-format task ``*.json`` files or a ``.jsonl``)
or ``deskpilot eval --suite basic`` (a bundled suite) runs every selected task on fresh
desktops, checks it, and writes ``OUT/results.jsonl``, ``OUT/settings.json``,
``OUT/index.html`` and one run directory per task under ``OUT/runs/``
(:mod:`deskpilot.eval.runner`). ``deskpilot eval compare A B`` compares two such outputs
(:mod:`deskpilot.eval.compare`). This module imports only click at load time (``deskpilot
--help`` stays fast); the harness is imported when a command runs. Options read the
environment like every deskpilot command (``DESKPILOT_MODEL``, ``DESKPILOT_PROVIDER``, and
click's automatic ``DESKPILOT_EVAL_<OPTION>``).

Exit status: 0 when every task got a verdict; 1 when any task is an ``error`` (or, under
``--oracle``, did not pass: the oracle must pass every supported task); 130/143 when
interrupted (the finished tasks are kept: ``--resume`` continues).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..click_options import provider_option, screen_size_options
from ..errors import MissingDependencyError

if TYPE_CHECKING:
    from .options import EvalOptions, Mode
    from .results import HarnessSettings, TaskResult

__all__ = ["eval_group"]


class _EvalGroup(click.Group):
    """``deskpilot eval [SUITE]`` runs a suite; ``deskpilot eval compare A B`` is a
    subcommand: when the first argument names a subcommand, the group's own SUITE argument
    is left empty instead of swallowing it (a suite directory named like a subcommand can be
    given as ``./compare``). Options may follow SUITE."""

    allow_interspersed_args = True

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] in self.commands:
            super().parse_args(ctx, [])
            ctx._protected_args, ctx.args = args[:1], args[1:]
            return ctx.args
        return super().parse_args(ctx, args)


def _default_out(suite: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = "".join(c if c.isalnum() or c in "._-" else "-" for c in Path(suite).name)[:40]
    return str(Path("deskpilot-evals") / f"{stamp}-{name or 'suite'}")


def _settings_lines(settings: HarnessSettings) -> list[str]:
    from .index import settings_rows

    keep = (
        "suite tasks mode model model_id provider tool_types screen max_turns default_max_turns "
        "keep_screenshots prune_interval cache trials desktops pass_mark deskpilot_version"
    ).split()
    rows = dict(settings_rows(settings))
    return [f"  {k:<18} {rows.get(k, '-')}" for k in keep]


def _mode(oracle: bool, noop: bool, replay: str | None) -> Mode:
    modes: list[Mode] = ["oracle", "noop", "replay"]
    chosen = [m for m, on in zip(modes, (oracle, noop, bool(replay)), strict=True) if on]
    if len(chosen) > 1:
        raise click.UsageError(f"Choose one of --oracle, --noop and --replay, not {chosen}.")
    return chosen[0] if chosen else "model"


@click.group(
    cls=_EvalGroup,
    invoke_without_command=True,
    short_help="Run an OSWorld-format task suite on fresh desktops and score it.",
)
@click.argument("suite_path", metavar="[SUITE]", required=False, type=click.Path(exists=True))
@click.option("--suite", "bundled", metavar="NAME", help="A bundled suite instead of SUITE: basic.")
@click.option(
    "--model",
    envvar="DESKPILOT_MODEL",
    show_envvar=True,
    help="The model's registry name (default claude-sonnet-4-5; also the name the fake "
    "model answers to under --oracle/--noop/--replay).",
)
@provider_option("The platform (default: the model's).")
@click.option(
    "--desktops",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Desktops (and tasks) at once.",
)
@click.option(
    "--trials",
    type=click.IntRange(1, 100),
    default=1,
    show_default=True,
    help="Runs of each task (pass@k and the mean over them).",
)
@click.option(
    "--max-turns",
    type=click.IntRange(1, 1000),
    default=None,
    help="Model calls per task for every task (default: the task's max_turns, else 30).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Output directory (default deskpilot-evals/<UTC time>-<suite>).",
)
@click.option("--resume", is_flag=True, help="Continue the run in --out: skip tasks it has.")
@click.option(
    "--tasks",
    "pattern",
    metavar="PATTERN",
    help="Only tasks whose id or a tag matches one of these comma-separated shell patterns.",
)
@click.option(
    "--replay",
    type=click.Path(exists=True, file_okay=False),
    metavar="DIR",
    allow_from_autoenv=False,
    help="Re-score an earlier run: serve its recorded model turns to fresh desktops, check.",
)
@click.option(
    "--oracle",
    is_flag=True,
    help="Serve each task's `solution` turns from a local fake model (no key, no network).",
)
@click.option(
    "--noop",
    is_flag=True,
    help="A fake model that answers 'Done.' at once (every checker's failing side).",
)
@screen_size_options(
    "Desktop width in pixels (a task's solution coordinates assume its suite's size).",
    "Desktop height in pixels.",
)
@click.pass_context
def eval_group(
    ctx: click.Context,
    suite_path: str | None,
    bundled: str | None,
    model: str | None,
    provider: str | None,
    desktops: int,
    trials: int,
    max_turns: int | None,
    out: str | None,
    resume: bool,
    pattern: str | None,
    replay: str | None,
    oracle: bool,
    noop: bool,
    width: int,
    height: int,
) -> None:
    """Run a task suite on fresh desktops, check every result with its script, and score it.

    SUITE is a directory of OSWorld-format task files (*.json) or a .jsonl of tasks; or use
    --suite basic for the bundled offline suite. Each task: a fresh desktop, its set-up
    steps, the agent's run (trajectory and report under OUT/runs/), then its checker.
    Results go to OUT/results.jsonl, the harness settings to OUT/settings.json, and
    OUT/index.html links every task's report with its verdict and evidence.

    \b
    Examples:
      deskpilot eval --suite basic --oracle --desktops 2
      deskpilot eval --suite basic --model claude-sonnet-4-5 --trials 3 --out runA
      deskpilot eval compare runA runB
    """
    if ctx.invoked_subcommand is not None:
        return
    from . import bundled_suite
    from .options import EvalOptions

    if (suite_path is None) == (bundled is None):
        raise click.UsageError("Give a SUITE path or --suite NAME (one of them).")
    mode = _mode(oracle, noop, replay)
    suite = str(bundled_suite(bundled)) if bundled is not None else str(suite_path)
    label = bundled if bundled is not None else str(Path(str(suite_path)).resolve())
    if shutil.which("Xvfb") is None:
        raise MissingDependencyError(
            "Xvfb is not installed; run `deskpilot doctor --install` (or sudo apt-get install "
            "-y --no-install-recommends xvfb openbox)."
        )
    opts = EvalOptions(
        out=Path(out or _default_out(label)),
        mode=mode,
        model=model,
        provider=provider,
        desktops=desktops,
        trials=trials,
        max_turns=max_turns,
        resume=resume,
        pattern=pattern,
        replay_dir=Path(replay) if replay else None,
        screen=(width, height),
    )
    sys.exit(asyncio.run(_run(suite, label, opts)))


async def _run(suite: str, label: str, opts: EvalOptions) -> int:
    from tqdm import tqdm

    from .index import summary_table
    from .runner import run_suite

    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    got: list[int] = []

    def stop(sig: int) -> None:
        got.append(sig)
        if task is not None:
            task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop, sig)

    def line(result: TaskResult) -> None:
        note = result.reason or result.evidence.split("\n", 1)[0]
        tqdm.write(
            f"{result.status:<11} {result.id} (trial {result.trial}): score {result.score:.2f}, "
            f"{result.steps} steps, {result.duration_s:.1f} s"
            + (f" - {_one_line(note, 100)}" if note else ""),
            file=sys.stdout,
        )

    click.echo(f"deskpilot eval: {label} -> {opts.out}")
    try:
        run = await run_suite(
            suite, opts, suite_label=label, on_result=line, progress=sys.stderr.isatty()
        )
    except asyncio.CancelledError:
        name = signal.Signals(got[0]).name if got else "cancelled"
        click.echo(
            f"\n{name}: stopped; finished tasks are in {opts.out}/results.jsonl "
            "(add --resume to continue).",
            err=True,
        )
        return 128 + got[0] if got else 130
    click.echo("Harness settings (also in settings.json):")
    click.echo("\n".join(_settings_lines(run.settings)))
    if run.skipped:
        click.echo(f"Skipped {len(run.skipped)} task runs already in results.jsonl (--resume).")
    click.echo("")
    click.echo(summary_table(run.all_results))
    click.echo(f"Wall time {run.wall_s:.1f} s for {len(run.results)} task runs.")
    click.echo(f"Results: {opts.out / 'results.jsonl'}")
    if run.index is not None:
        click.echo(f"Index:   {run.index}\n         {run.index.resolve().as_uri()}")
    bad = [r for r in run.all_results if r.status == "error"]
    if opts.mode == "oracle":
        bad = [r for r in run.all_results if r.status not in ("pass", "unsupported")]
    return 1 if bad else 0


def _one_line(text: str, limit: int) -> str:
    from ..terminal import one_line

    return one_line(text, limit)


@eval_group.command("compare")
@click.argument("run_a", type=click.Path(exists=True))
@click.argument("run_b", type=click.Path(exists=True))
@click.option(
    "--confidence",
    type=click.FloatRange(0.5, 0.999),
    default=0.95,
    show_default=True,
    help="The confidence interval's coverage.",
)
@click.option("--resamples", type=click.IntRange(100, 1_000_000), default=10_000, show_default=True)
@click.option("--all", "all_tasks", is_flag=True, help="List every shared task, not only changes.")
def compare_command(
    run_a: str, run_b: str, confidence: float, resamples: int, all_tasks: bool
) -> None:
    """Compare two eval runs (their --out directories): per-task score changes and the
    overall delta B - A with a bootstrap confidence interval over tasks."""
    from .compare import compare_runs

    result = compare_runs(run_a, run_b, confidence=confidence, resamples=resamples)
    click.echo(result.format(all_tasks=all_tasks))
