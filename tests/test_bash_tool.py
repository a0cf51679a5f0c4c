"""BashTool on a real bash: persistence, interleaving, exit codes, timeouts, truncation, cleanup."""

from __future__ import annotations

import asyncio
import contextlib
import os

import psutil
import pytest

from deskpilot import BashTool, ToolCall
from deskpilot.computer_use.bash import MAX_OUTPUT_CHARS, truncate_middle
from deskpilot.errors import ConfigError


def cmd(command: str | None = None, **kw) -> ToolCall:
    args = dict(kw)
    if command is not None:
        args["command"] = command
    return ToolCall("tu_b", "bash", args)


@pytest.fixture
async def bash(tmp_path):
    async with BashTool(timeout_s=5.0, cwd=tmp_path) as b:
        yield b


@pytest.mark.parametrize("version", ["bash_20241022", "bash_20250124"])
async def test_definition_name_and_echo(version):
    async with BashTool(version=version) as b:
        assert b.definition == {"type": version, "name": "bash"}
        assert b.name == "bash"
        r = await b.execute(cmd("echo 'Hello, World!'"))
        assert r.text == "Hello, World!" and not r.is_error


def test_bad_configuration():
    with pytest.raises(ConfigError):
        BashTool(version="bash_2099")
    with pytest.raises(ConfigError):
        BashTool(timeout_s=0)


async def test_state_persists_between_commands(bash, tmp_path):
    await bash.execute(cmd("mkdir sub && cd sub && export FOO=bar && f() { echo fn; }"))
    r = await bash.execute(cmd("pwd; echo $FOO; f"))
    assert r.text == f"{tmp_path}/sub\nbar\nfn"


async def test_stdout_and_stderr_are_interleaved_in_order(bash):
    r = await bash.execute(cmd("echo one; echo two >&2; echo three; echo four >&2"))
    assert r.text == "one\ntwo\nthree\nfour"


async def test_exit_code_reported_when_non_zero(bash):
    r = await bash.execute(cmd("nonexistent_command_xyz"))
    assert "command not found" in r.text and r.text.endswith("[exit code: 127]")
    assert not r.is_error
    r = await bash.execute(cmd("bash -c 'exit 1'"))
    assert r.text == "[exit code: 1]"
    assert (await bash.execute(cmd("true"))).text == ""


async def test_syntax_error_stays_in_the_command(bash):
    r = await bash.execute(cmd("echo 'unterminated"))
    assert "unexpected EOF" in r.text and "[exit code: 2]" in r.text
    assert (await bash.execute(cmd("echo fine"))).text == "fine"


async def test_output_without_final_newline_and_sentinel_cannot_be_spoofed(bash):
    assert (await bash.execute(cmd("printf abc"))).text == "abc"
    r = await bash.execute(cmd("printf '\\n__DESKPILOT_0000__:0\\n'; echo after"))
    assert r.text.endswith("after")


async def test_read_gets_eof_at_once(bash):
    r = await asyncio.wait_for(bash.execute(cmd("read x; echo got:$x:$?")), 4)
    assert r.text == "got::1"


async def test_exit_restarts_the_shell(bash):
    await bash.execute(cmd("export KEEP=1"))
    r = await bash.execute(cmd("echo bye; exit 3"))
    assert r.text.startswith("bye\n[The shell exited with code 3")
    r = await bash.execute(cmd("echo ${KEEP:-unset}"))
    assert r.text == "unset"


async def test_exit_with_background_job_holding_the_pipe_returns_promptly(bash):
    r = await asyncio.wait_for(bash.execute(cmd("echo out; sleep 30 & exit 4")), 4)
    assert r.text.startswith("out\n[The shell exited with code 4")


async def test_timeout_kills_the_process_group_and_restarts():
    import random

    seconds = f"30.{random.randrange(10**6):06d}"  # a unique argv to find the job by
    async with BashTool(timeout=0.5) as b:
        await b.execute(cmd("export KEEP=1"))
        r = await b.execute(cmd(f"sleep {seconds} & echo started; sleep 30"))
        assert r.is_error
        started, note = r.text.split("\n", 1)
        assert started == "started"
        assert note.startswith("Command timed out after 0.5 seconds; the shell was restarted")
        # ($! would be the job's pid inside the shell's own PID namespace, not ours)
        for _ in range(100):
            live = [p for p in pids_running(seconds) if psutil.Process(p).status() != "zombie"]
            if not live:
                break
            await asyncio.sleep(0.02)
        assert live == []
        r = await b.execute(cmd("echo ${KEEP:-unset}"))
        assert r.text == "unset"


async def test_large_output_returns_promptly_and_truncated(bash):
    r = await asyncio.wait_for(
        bash.execute(cmd("head -c 300000 /dev/zero | tr '\\0' x; echo END")), 5
    )
    assert len(r.text) < MAX_OUTPUT_CHARS + 300
    assert r.text.startswith("xxxx") and r.text.endswith("xxEND")
    assert "characters truncated" in r.text


async def test_huge_output_keeps_memory_bounded(bash):
    r = await bash.execute(cmd("head -c 20000000 /dev/zero | tr '\\0' y; echo; echo TAIL"))
    assert r.text.endswith("\nTAIL")
    assert "[... 19" in r.text  # ~19.97 M characters dropped


def test_truncate_middle():
    assert truncate_middle("abc", 10) == "abc"
    out = truncate_middle("a" * 50 + "b" * 50, 20)
    assert out.startswith("a" * 10) and out.endswith("b" * 10) and "80 characters truncated" in out


async def test_restart_and_no_command(bash):
    await bash.execute(cmd("export KEEP=1"))
    r = await bash.execute(cmd(restart=True))
    assert r.text == "tool has been restarted." and not r.is_error
    assert (await bash.execute(cmd("echo ${KEEP:-unset}"))).text == "unset"
    r = await bash.execute(cmd())
    assert r.is_error and r.text == "no command provided."
    r = await bash.execute(cmd(restart=True, command="echo fresh"))
    assert r.text == "tool has been restarted.\nfresh"


async def test_bad_input_is_an_error(bash):
    r = await bash.execute(cmd(123))  # type: ignore[arg-type]
    assert r.is_error and "command must be a string" in r.text
    r = await bash.execute(cmd("echo", bogus=1))
    assert r.is_error and "bogus" in r.text


async def test_env_and_cwd(tmp_path):
    async with BashTool(env={"DISPLAY": ":77", "MY_VAR": "x y"}, cwd=tmp_path) as b:
        r = await b.execute(cmd('echo "$DISPLAY|$MY_VAR|$PWD|$PAGER"'))
        assert r.text == f":77|x y|{tmp_path}|cat"


async def test_non_utf8_output_is_replaced_not_crashing(bash):
    r = await bash.execute(cmd("printf 'a\\xffb'"))
    assert r.text == "a\ufffdb"


async def test_aclose_kills_the_group_and_leaves_no_zombies(tmp_path):
    b = BashTool()
    await b.execute(cmd("sleep 60 & echo $!"))
    bash_pid = b._session.proc.pid
    me = psutil.Process(os.getpid())
    assert bash_pid in [c.pid for c in me.children()]
    await b.aclose()
    await asyncio.sleep(0.05)
    assert bash_pid not in [c.pid for c in me.children()]
    assert not psutil.pid_exists(bash_pid) or psutil.Process(bash_pid).status() != "zombie"
    r = await b.execute(cmd("echo no"))
    assert r.is_error and "closed" in r.text


async def test_commands_are_serialised(bash):
    results = await asyncio.gather(*(bash.execute(cmd(f"echo {i}")) for i in range(10)))
    assert [r.text for r in results] == [str(i) for i in range(10)]


async def test_shadowing_printf_or_source_does_not_break_the_session(bash):
    r = await asyncio.wait_for(
        bash.execute(cmd("printf() { echo fake; }; source() { echo fake; }; echo defined")), 4
    )
    assert r.text == "defined"
    r = await asyncio.wait_for(bash.execute(cmd("echo still works; printf x")), 4)
    assert r.text == "still works\nfake"


# -- the protocol depends on no redefinable name (issue 7, defect 11) --------------------------
FAST_S = 4  # every command below answers at once; the tool's timeout is 5 s


@pytest.mark.parametrize(
    "definition",
    [
        "builtin() { echo hijacked; }",
        "command() { echo hijacked; }; printf() { echo hijacked; }; echo() { :; }",
        "shopt -s expand_aliases; alias builtin='echo hijacked'; alias command=false",
        "eval() { :; }; source() { :; }; unset() { :; }; set() { :; }; trap() { :; }",
    ],
)
async def test_redefining_builtin_command_or_aliases_keeps_the_session_working(bash, definition):
    r = await asyncio.wait_for(bash.execute(cmd(definition)), FAST_S)
    assert not r.is_error and "timed out" not in r.text
    for i in range(3):
        r = await asyncio.wait_for(
            bash.execute(cmd(f"cd /; X{i}=v{i}; /bin/echo $X{i} $PWD")), FAST_S
        )
        assert (r.text, r.is_error) == (f"v{i} /", False)


async def test_set_v_and_set_x_do_not_leak_protocol_lines(bash):
    assert (await bash.execute(cmd("set -v"))).text == ""
    r = await bash.execute(cmd("/bin/echo verbose"))
    assert r.text == "/bin/echo verbose\nverbose"  # the user's own line, echoed; nothing else
    await bash.execute(cmd("set +v; set -x"))
    r = await bash.execute(cmd("/bin/echo traced"))
    assert r.text == "+++ /bin/echo traced\ntraced"  # level 3: inside the driver and the file
    r = await bash.execute(cmd("set +x"))
    assert "__dp" not in r.text and "DESKPILOT" not in r.text and "deskpilot-bash" not in r.text
    assert (await bash.execute(cmd("/bin/echo clean"))).text == "clean"


async def test_a_function_named_dot_is_reported_and_the_shell_restarted(bash):
    await bash.execute(cmd(".() { :; }"))
    r = await asyncio.wait_for(bash.execute(cmd("/bin/echo never")), FAST_S)
    assert r.is_error and "was not run" in r.text and "`.`" in r.text
    assert (await bash.execute(cmd("/bin/echo again"))).text == "again"


async def test_exec_to_dev_null_says_where_the_output_went(bash):
    r = await asyncio.wait_for(bash.execute(cmd("exec >/dev/null")), FAST_S)
    assert not r.is_error
    assert "standard output now goes to /dev/null" in r.text and "exited" not in r.text
    r = await asyncio.wait_for(bash.execute(cmd("echo hidden; echo shown >&2; exit 5")), FAST_S)
    assert r.text.startswith("shown\n[The shell exited with code 5")


async def test_closing_every_output_is_explained_not_exit_code_none(bash):
    r = await asyncio.wait_for(bash.execute(cmd("exec >&- 2>&- 99>&-")), FAST_S)
    assert "None" not in r.text and "closed its output" in r.text
    assert (await bash.execute(cmd("echo back"))).text == "back"


# -- resource limits (issue 7, "Also") ------------------------------------------------------
async def test_shell_limits_are_set_in_the_shell_and_enforced(tmp_path):
    from deskpilot.computer_use.bash import ShellLimits

    limits = ShellLimits(
        max_processes=4000,
        max_memory_bytes=512 * 2**20,
        max_file_bytes=2**20,
        max_open_files=256,
    )
    async with BashTool(timeout_s=10, cwd=tmp_path, limits=limits) as b:
        r = await b.execute(cmd("ulimit -u; ulimit -v; ulimit -f; ulimit -n"))
        # ulimit reports kibibytes for -v and 512-byte blocks (bash) for -f
        assert r.text.split() == ["4000", str(512 * 1024), str(2**20 // 1024), "256"]
        r = await b.execute(cmd("head -c 3000000 /dev/zero > big.bin; ls -l big.bin"))
        assert "File size limit exceeded" in r.text and " 1048576 " in r.text
        r = await b.execute(cmd("python3 -c 'b = bytearray(1024 * 2**20)' 2>&1 | tail -1"))
        assert "MemoryError" in r.text


async def test_no_limits_by_default_and_bad_limits_are_refused():
    from deskpilot.computer_use.bash import ShellLimits

    async with BashTool() as b:
        assert (await b.execute(cmd("ulimit -f"))).text == "unlimited"
    with pytest.raises(ConfigError, match="64 MiB"):
        ShellLimits(max_memory_bytes=2**20)
    with pytest.raises(ConfigError, match="positive integer"):
        ShellLimits(max_processes=0)
    with pytest.raises(ConfigError, match="ShellLimits"):
        BashTool(limits={"max_processes": 5})  # type: ignore[arg-type]


# -- probe #1: fixes in the protocol (N, fd 99, RETURN trap) -------------------------------
async def test_removing_the_tools_own_directory_does_not_break_later_commands(bash):
    """Probe finding N: ``rm -rf /tmp/deskpilot-bash-*`` made every later command and
    ``restart`` fail with FileNotFoundError for the rest of the run."""
    await bash.execute(cmd("cd /; export KEEP=1"))
    own = bash._tmpdir
    r = await bash.execute(cmd(f"rm -rf {own}; echo removed"))
    assert (r.text, r.is_error) == ("removed", False)
    r = await bash.execute(cmd('echo "$KEEP $PWD"'))  # the same shell goes on
    assert (r.text, r.is_error) == ("1 /", False)
    r = await bash.execute(cmd(restart=True, command="echo fresh"))
    assert (r.text, r.is_error) == ("tool has been restarted.\nfresh", False)
    # the name taken by a file: a new directory, the shell restarted, the model told
    r = await bash.execute(cmd(f"rm -rf {own} && touch {own}; echo planted"))
    assert r.text == "planted"
    r = await bash.execute(cmd("echo ${KEEP:-unset}"))
    assert not r.is_error and r.text.startswith("unset\n[Note: this tool's private directory")
    assert bash._tmpdir != own and os.path.isfile(own)
    os.unlink(own)
    assert (await bash.execute(cmd("echo ok"))).text == "ok"


async def test_a_return_trap_does_not_print_into_later_results(bash):
    """Probe: ``trap 'echo TRAPPED' RETURN`` fired as the tool's sourced files returned and
    printed into every later result; the exit status is still the command's own."""
    r = await bash.execute(cmd("trap 'echo TRAPPED' RETURN; echo set"))
    assert r.text == "set"
    assert (await bash.execute(cmd("echo a"))).text == "a"
    assert (await bash.execute(cmd("printf b"))).text == "b"
    assert (await bash.execute(cmd("false"))).text == "[exit code: 1]"
    r = await bash.execute(cmd("f() { echo in-f; }; f"))  # the user's own function: as bash does
    assert r.text == "in-f"
    r = await bash.execute(cmd("trap 'echo ERR-TRAP' ERR; false"))  # the user's ERR trap shows
    assert r.text == "ERR-TRAP\n[exit code: 1]"
    r = await bash.execute(cmd("echo 'unterminated"))  # no end marker: the sentinel decides
    assert "unexpected EOF" in r.text and r.text.endswith("[exit code: 2]")
    r = await bash.execute(cmd("echo cont \\"))  # a trailing backslash continues nothing
    assert r.text == "cont"
    r = await bash.execute(cmd("cat <<EOF\nopen here-doc"))
    assert r.text.endswith("\nopen here-doc") and "_dp" not in r.text and "__DP" not in r.text


async def test_redirecting_fd_99_is_explained_not_a_plain_timeout(tmp_path):
    """Probe: ``exec 99>/dev/null`` made the command look like a timeout."""
    async with BashTool(timeout_s=1.5, cwd=tmp_path) as b:
        r = await b.execute(cmd("exec 99>/dev/null; echo after-99"))
        assert r.is_error
        assert "file descriptor 99" in r.text and "/dev/null" in r.text, r.text
        assert r.text.startswith("after-99\n")
        assert (await b.execute(cmd("echo next"))).text == "next"


def pids_running(argument: str) -> list[int]:
    """Pids (as this process sees them) of processes with ``argument`` in their argv."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                argv = open(f"/proc/{entry}/cmdline", "rb").read().split(b"\0")
            except OSError:
                continue
            if argument.encode() in argv:
                found.append(int(entry))
    return found


def test_no_event_loop_is_closed_traceback_at_exit():
    """Probe ("other low"): a job that escaped the shell's process group (``setsid``) kept
    the shell's transport open; its ``__del__`` ran after ``asyncio.run`` and printed
    "Event loop is closed" on stderr."""
    import random
    import subprocess
    import sys
    import textwrap

    seconds = f"30.{random.randrange(10**6):06d}"  # a unique argv to find the job by
    child = textwrap.dedent(
        f"""
        import asyncio
        from deskpilot import BashTool, ToolCall
        async def main():
            async with BashTool(timeout_s=5) as b:
                await b.execute(ToolCall("x", "bash", {{"command":
                    "setsid sleep {seconds} >/dev/null 2>&1 </dev/null & echo started"}}))
        asyncio.run(main())
        """
    )
    try:
        out = subprocess.run(
            [sys.executable, "-c", child], capture_output=True, text=True, timeout=30
        )
        assert out.returncode == 0, out.stderr
        assert "Event loop is closed" not in out.stderr and "Traceback" not in out.stderr
    finally:
        for pid in pids_running(seconds):
            with contextlib.suppress(OSError):
                os.kill(pid, 9)


async def test_a_shell_killed_by_a_signal_says_which_and_the_next_command_runs(bash):
    from deskpilot.desktop.processes import signal_name

    assert (signal_name(9), signal_name(15), signal_name(200)) == (
        "SIGKILL",
        "SIGTERM",
        "signal 200",
    )
    running = asyncio.create_task(bash.execute(cmd("echo before; sleep 30")))
    while bash._session is None or b"before" not in bash._session.output.text()[0].encode():
        await asyncio.sleep(0.02)
    os.killpg(bash._session.proc.pid, 9)  # from outside: inside, bash may be its pid 1
    r = await asyncio.wait_for(running, 10)
    assert "[The shell was killed by SIGKILL;" in r.text, r.text
    r2 = await bash.execute(cmd("echo again"))
    assert not r2.is_error and r2.text.strip() == "again"
