"""Eval getters and the checker on a real desktop: what each getter reads (and None with a
reason for missing files and timeouts), and how the checker combines metrics (OSWorld's
and/or rule, post-config first, infeasible declarations)."""

from __future__ import annotations

import pytest

from deskpilot.desktop.local import LocalDesktop
from deskpilot.eval import EvalContext, EvalError, SetupError, check_task
from deskpilot.eval.getters import check_getter, get_value, strip_terminal
from deskpilot.eval.task import parse_task

pytestmark = pytest.mark.desktop


@pytest.fixture
async def ctx(tmp_path):
    suite = tmp_path / "suite"
    (suite / "_assets").mkdir(parents=True)
    (suite / "_assets" / "expected.txt").write_text("hello\n")
    (tmp_path / "secret.txt").write_text("outside\n")
    async with LocalDesktop(640, 400) as desktop:
        yield EvalContext(
            host=desktop,
            work_dir=tmp_path / "work",
            computer=desktop,
            base_dir=suite,
            root_dir=suite,
            command_timeout_s=5,
        )


async def test_vm_command_line_returns_stdout_like_osworld(ctx):
    got = await get_value(
        ctx, {"type": "vm_command_line", "command": "echo $((6*7))", "shell": True}
    )
    assert got.value == "42\n" and "exited with 0" in got.evidence
    split = await get_value(ctx, {"type": "vm_command_line", "command": "printf '%s|' a 'b c'"})
    assert split.value == "a|b c|"  # shell false: the string is split with shlex
    listed = await get_value(
        ctx, {"type": "vm_command_line", "command": ["python", "-c", "print(1)"]}
    )
    assert listed.value == "1\n"  # python runs as python3
    failing = await get_value(
        ctx, {"type": "vm_command_line", "command": "echo partial; exit 2", "shell": True}
    )
    assert failing.value == "partial\n" and "exited with 2" in failing.evidence
    missing = await get_value(ctx, {"type": "vm_command_line", "command": ["no-such-tool-q"]})
    assert missing.value == "" and "exited with 127" in missing.evidence
    slow = await get_value(ctx, {"type": "vm_command_line", "command": "sleep 30", "shell": True})
    assert slow.value is None and "timed out after 5 s" in slow.evidence
    err = await get_value(
        ctx, {"type": "vm_command_error", "command": "echo oops >&2", "shell": True}
    )
    assert err.value == "oops\n"


async def test_vm_file_copies_the_desktops_file_into_the_work_dir(ctx):
    await ctx.host.put_file("~/docs/a.txt", b"alpha")
    got = await get_value(ctx, {"type": "vm_file", "path": "~/docs/a.txt", "dest": "a.txt"})
    assert (
        got.value == str(ctx.work_dir / "a.txt")
        and (ctx.work_dir / "a.txt").read_bytes() == b"alpha"
    )
    assert "(5 bytes)" in got.evidence
    gone = await get_value(ctx, {"type": "vm_file", "path": "~/docs/none.txt", "dest": "n.txt"})
    assert gone.value is None and "no file at ~/docs/none.txt" in gone.evidence
    escape = await get_value(
        ctx, {"type": "vm_file", "path": "~/docs/a.txt", "dest": "../../x.txt"}
    )
    assert escape.value == str(ctx.work_dir / "x.txt")  # dest is a file name in the work dir
    multi = await get_value(
        ctx,
        {
            "type": "vm_file",
            "multi": True,
            "path": ["~/docs/a.txt", "~/docs/none.txt", "~/docs/a.txt"],
            "dest": ["m0", "m1", "m2"],
            "gives": [0, 1],
        },
    )
    assert multi.value == [str(ctx.work_dir / "m0"), None]
    with pytest.raises(SetupError, match="not a file name"):
        await get_value(ctx, {"type": "vm_file", "path": "~/docs/a.txt", "dest": ".."})


async def test_cloud_file_reads_suite_files_only(ctx):
    got = await get_value(ctx, {"type": "cloud_file", "path": "_assets/expected.txt", "dest": "e"})
    assert (ctx.work_dir / "e").read_text() == "hello\n" and got.value == str(ctx.work_dir / "e")
    outside = await get_value(ctx, {"type": "cloud_file", "path": "../secret.txt", "dest": "s"})
    assert outside.value is None and not (ctx.work_dir / "s").exists()
    with pytest.raises(SetupError, match="no network"):
        await get_value(ctx, {"type": "cloud_file", "path": "https://example.org/x", "dest": "x"})


async def test_rule_and_unknown_getters(ctx):
    assert (await get_value(ctx, {"type": "rule", "rules": {"expected": "x"}})).value == {
        "expected": "x"
    }
    with pytest.raises(SetupError, match="getter 'accessibility_tree' is not supported"):
        await get_value(ctx, {"type": "accessibility_tree"})
    assert "needs a 'command'" in (check_getter({"type": "vm_command_line"}) or "")
    assert "needs 'rules'" in (check_getter({"type": "rule"}) or "")
    assert "same length" in (
        check_getter({"type": "vm_file", "multi": True, "path": ["a"], "dest": []}) or ""
    )


async def test_vm_terminal_output_reads_the_launched_terminals_transcript(ctx):
    assert (await get_value(ctx, {"type": "vm_terminal_output"})).value is None  # none started
    task = parse_task(
        {
            "id": "term",
            "instruction": "i",
            "config": [{"type": "launch", "parameters": {"command": ["gnome-terminal"]}}],
            "evaluator": {
                "func": "check_include_exclude",
                "result": {"type": "vm_terminal_output"},
                "expected": {"type": "rule", "rules": {"include": ["\n42\n"], "exclude": []}},
            },
        },
        where="t",
    )
    assert task.runnable
    from deskpilot.eval import run_setup

    await run_setup(ctx, task.config)
    await ctx.computer.type_text("echo $((6*7))\n")
    await ctx.host.run_command(
        "until grep -q 42 ~/.cache/deskpilot/terminal.log; do sleep 0.1; done", timeout_s=10
    )
    verdict = await check_task(task, ctx)
    assert verdict.passed, verdict.summary
    assert strip_terminal("a\x1b[1;32mb\x1b[0m\r\nc\x1b]0;title\x07") == "ab\nc"


def task_with(evaluator, **extra):
    return parse_task({"id": "t", "instruction": "i", "evaluator": evaluator, **extra}, where="t")


def rule(value):
    return {"type": "rule", "rules": value}


async def test_the_checker_combines_metrics_like_osworld(ctx):
    two = {
        "func": ["exact_match", "exact_match"],
        "result": [rule("a"), rule("b")],
        "expected": [rule({"expected": "a"}), rule({"expected": "zzz"})],
    }
    both = await check_task(task_with({**two, "conj": "and"}), ctx)
    assert not both.passed and both.score == 0 and len(both.evidence) == 2
    either = await check_task(task_with({**two, "conj": "or"}), ctx)
    assert either.passed and either.score == 1 and len(either.evidence) == 1
    fuzzy = await check_task(
        task_with(
            {"func": "fuzzy_match", "result": rule("abcd"), "expected": rule({"expected": "abxy"})}
        ),
        ctx,
    )
    assert fuzzy.score == pytest.approx(0.5) and not fuzzy.passed
    # post-config runs before the getters
    post = task_with(
        {
            "func": "exact_match",
            "postconfig": [
                {"type": "execute", "parameters": {"command": "echo made > ~/p", "shell": True}}
            ],
            "result": {"type": "vm_command_line", "command": "cat ~/p", "shell": True},
            "expected": rule({"expected": "made\n"}),
        }
    )
    assert (await check_task(post, ctx)).passed
    broken = post.model_copy(deep=True)
    assert broken.evaluator is not None
    broken.evaluator.postconfig[0].parameters["command"] = "exit 9"
    with pytest.raises(SetupError, match=r"postconfig step 1 \(execute\)"):
        await check_task(broken, ctx)


async def test_infeasible_declarations(ctx):
    infeasible = task_with({"func": "infeasible"})
    ctx.final_text = "  INFEASIBLE: there is no printer here."
    yes = await check_task(infeasible, ctx)
    assert yes.passed and yes.declared_infeasible
    feasible = task_with(
        {"func": "exact_match", "result": rule("a"), "expected": rule({"expected": "a"})}
    )
    gave_up = await check_task(feasible, ctx)
    assert not gave_up.passed and "declared a feasible task infeasible" in gave_up.summary
    ctx.final_text = "Done. (Not INFEASIBLE.)"
    no = await check_task(infeasible, ctx)
    assert not no.passed and "does not start with INFEASIBLE" in no.summary
    assert (await check_task(feasible, ctx)).passed
    unsupported = task_with({"func": "compare_table", "result": rule(1)})
    with pytest.raises(EvalError, match="cannot be checked here: metric 'compare_table'"):
        await check_task(unsupported, ctx)
