"""The ``deskpilot fleet`` command (click); the runner is :func:`deskpilot.fleet.run_fleet`.

Only click is imported at load time, so ``deskpilot --help`` stays fast without Ray.
Options take click's automatic ``DESKPILOT_FLEET_<OPTION>`` variables; ``--model`` also
reads ``DESKPILOT_MODEL`` like ``deskpilot run``.
"""

from __future__ import annotations

import sys

import click

from ..click_options import provider_option, screen_size_options

__all__ = ["fleet"]

_DEFAULT_MODEL = "claude-sonnet-4-5"


def _apps(value: str) -> tuple[str, ...]:
    """The app names of ``--apps`` (comma-separated), each checked.

    Raises:
        ConfigError: an unknown app name.
    """
    from ..desktop.apps import app_spec

    apps = tuple(a.strip() for a in value.split(",") if a.strip())
    for name in apps:
        app_spec(name)
    return apps


def _resources(values: tuple[str, ...]) -> dict[str, float]:
    """The ``--desktop-resource NAME=AMOUNT`` options as a dict.

    Raises:
        click.BadParameter: a value without ``=`` or with an amount that is not a number.
    """
    out: dict[str, float] = {}
    for value in values:
        name, sep, amount = value.partition("=")
        try:
            if not sep:
                raise ValueError(value)
            out[name.strip()] = float(amount)
        except ValueError:
            raise click.BadParameter(
                f"expected NAME=AMOUNT (like desktop=1), not {value!r}.",
                param_hint="--desktop-resource",
            ) from None
    return out


@click.command(short_help="Run a JSONL file of tasks over desktops on a Ray cluster.")
@click.argument("tasks_file", metavar="TASKS.jsonl", type=click.Path(dir_okay=False))
@click.option("--desktops", type=click.IntRange(1), default=None,
              help="Desktop actors (tasks running at once). Default: one per --server, "
              "else 2.")  # fmt: skip
@click.option("--address", default=None,
              help="The Ray cluster to join ('auto': the one `ray start` began on this "
              "machine; ray://HOST:10001). Default: a local Ray for this run.")  # fmt: skip
@click.option("--server", "servers", multiple=True, metavar="ws://HOST:PORT",
              help="A computer server (deskpilot serve, one desktop) for one actor to drive "
              "instead of a local desktop; repeat it, one per desktop.")  # fmt: skip
@click.option("--out", "out_dir", default="deskpilot-fleet", show_default=True,
              type=click.Path(file_okay=False),
              help="Output directory: results.jsonl and runs/<task id>/.")  # fmt: skip
@click.option("--shared-dir", default=None, metavar="PATH",
              help="A directory every node mounts at the same path (NFS, ...): each desktop "
              "actor writes its runs straight to PATH/<task id>/ and results.jsonl records "
              "only their paths (nothing is copied back). It must exist and be writable. "
              "Default: runs are sent back to OUT/runs/.")  # fmt: skip
@click.option("--resume", is_flag=True,
              help="Skip tasks that already have a line in OUT/results.jsonl.")  # fmt: skip
@click.option("--model", default=_DEFAULT_MODEL, show_default=True, envvar="DESKPILOT_MODEL",
              show_envvar=True, help="Model name (deskpilot models).")  # fmt: skip
@provider_option("Force a platform (default: the model's own).")
@click.option("--base-url", default=None,
              help="API origin (default ANTHROPIC_BASE_URL or the platform's).")  # fmt: skip
@click.option("--max-turns", type=click.IntRange(1), default=50, show_default=True,
              help="Model turns per task.")  # fmt: skip
@screen_size_options("Local desktop width in pixels.", "Local desktop height in pixels.")
@click.option("--apps", default="", help="Apps on each local desktop: terminal,editor,browser.")
@click.option("--rpm", type=click.FloatRange(min=0, min_open=True), default=1000.0,
              show_default=True, help="Requests per minute for the whole fleet.")  # fmt: skip
@click.option("--itpm", type=click.FloatRange(min=0, min_open=True), default=500_000.0,
              show_default=True, help="Input tokens per minute for the whole fleet.")  # fmt: skip
@click.option("--otpm", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Output tokens per minute for the whole fleet (default: no limit).")  # fmt: skip
@click.option("--max-concurrent", type=click.IntRange(1), default=225, show_default=True,
              help="Requests in flight at once over the whole fleet.")  # fmt: skip
@click.option("--desktop-cpus", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Ray CPUs reserved per desktop actor.")  # fmt: skip
@click.option("--desktop-resource", "desktop_resources", multiple=True, metavar="NAME=AMOUNT",
              help="A custom Ray resource each desktop actor needs (repeatable), e.g. "
              "desktop=1 to place desktops only on nodes started with ray start "
              "--resources '{\"desktop\": 4}'.")  # fmt: skip
@click.option("--max-retries", type=click.IntRange(0), default=2, show_default=True,
              help="Reruns of a task whose actor or node died.")  # fmt: skip
def fleet(
    tasks_file: str,
    desktops: int | None,
    address: str | None,
    servers: tuple[str, ...],
    out_dir: str,
    shared_dir: str | None,
    resume: bool,
    model: str,
    provider: str | None,
    base_url: str | None,
    max_turns: int,
    width: int,
    height: int,
    apps: str,
    rpm: float,
    itpm: float,
    otpm: float | None,
    max_concurrent: int,
    desktop_cpus: float,
    desktop_resources: tuple[str, ...],
    max_retries: int,
) -> None:
    """Run the tasks of TASKS.jsonl over --desktops desktop actors on Ray, under ONE rate
    limit shared by every actor (a named limiter actor), and gather the results.

    TASKS.jsonl has one JSON object per line: {"id": "unique-name", "task": "what the agent
    should do"} (blank lines and lines starting with # are skipped). Each task runs from
    scratch on a fresh desktop; a task whose actor or node dies is run again elsewhere (up
    to --max-retries times) and is counted once. OUT/results.jsonl gets one line per task
    as it finishes, and OUT/runs/<id>/ its trajectory (deskpilot report OUT/runs/<id> draws
    it), or SHARED/<id>/ with --shared-dir SHARED. The API key is read from
    ANTHROPIC_API_KEY (etc.) in each Ray worker's environment. Exit status 1 when a task
    did not end on its own (see results.jsonl), 0 otherwise. Details: docs/fleet.md.
    """
    from .desktop_actor import FleetSettings
    from .limit import LimitConfig
    from .records import read_tasks
    from .run import run_fleet

    tasks = read_tasks(tasks_file)
    settings = FleetSettings(
        model=model,
        provider=provider,
        base_url=base_url,
        max_turns=max_turns,
        width=width,
        height=height,
        apps=_apps(apps),
        servers=servers,
    )
    limits = LimitConfig(
        requests_per_minute=rpm,
        input_tokens_per_minute=itpm,
        output_tokens_per_minute=otpm,
        max_concurrent=max_concurrent,
    )
    results = run_fleet(
        tasks,
        settings=settings,
        desktops=desktops or len(servers) or 2,
        out_dir=out_dir,
        shared_dir=shared_dir,
        resume=resume,
        limits=limits,
        desktop_cpus=desktop_cpus,
        desktop_resources=_resources(desktop_resources),
        max_retries=max_retries,
        address=address,
    )
    ok = sum(r.ok for r in results)
    retried = sum(r.attempts > 1 for r in results)
    click.echo(
        f"{len(results)} tasks: {ok} ok, {len(results) - ok} not ok, {retried} rerun after a "
        f"lost desktop; results in {out_dir}/results.jsonl"
    )
    sys.exit(0 if ok == len(results) else 1)
