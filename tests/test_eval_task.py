"""Eval tasks: OSWorld's JSON loads (directory or JSONL), bad files are refused with the file
named, and every task is classified runnable or unsupported-with-a-reason at load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deskpilot.errors import ConfigError
from deskpilot.eval import load_tasks
from deskpilot.eval.task import Evaluator, Task, classify, parse_task

OSWORLD = Path(__file__).parent / "data" / "osworld"

#: OSWorld's own os-domain tasks (tests/data/osworld/README.md): which run here, and why not.
EXPECTED_OSWORLD = {
    "94d95f96-9699-4208-98ba-3c3119edf9c2": None,  # which spotify -> check_include_exclude
    "e0df059f-28a6-4169-924f-b9623e7184cc": None,  # rename a folder -> exact_match
    "bedcedc4-4d72-425e-ad62-21960b11fe0d": None,  # gsettings -> exact_match (fails: no GNOME)
    "4127319a-8b79-4410-b58a-7a151e15f3d7": "needs the network",
    "5812b315-e7bd-4265-b51f-863c02174c28": "postconfig step 'download': unsupported here",
    "ec4e3f68-9ea4-4c18-a5c9-69f89d1178b3": "metric 'check_gnome_favorite_apps' is not supported",
    "13584542-872b-42d8-b299-866967b5c3ef": "vm_terminal_output needs the task to launch",
    "6ebbfb01-ea72-4226-a2a6-dc428e111ed2": "pyautogui.type() with 1 arguments is not supported",
    "f10b16e1-c160-4cb3-989f-7b2ec89bc073": "func is empty",
}


def minimal(**extra):
    task = {
        "id": "t1",
        "instruction": "Do it.",
        "evaluator": {
            "func": "exact_match",
            "result": {"type": "vm_command_line", "command": "cat ~/x"},
            "expected": {"type": "rule", "rules": {"expected": "y"}},
        },
    }
    task.update(extra)
    return task


def test_osworld_os_tasks_load_and_are_classified():
    tasks = {t.id: t for t in load_tasks(OSWORLD)}
    assert set(tasks) == set(EXPECTED_OSWORLD)
    for task_id, reason in EXPECTED_OSWORLD.items():
        task = tasks[task_id]
        if reason is None:
            assert task.runnable, (task_id, task.unsupported)
        else:
            assert not task.runnable and reason in (task.unsupported or ""), task.unsupported
    # OSWorld's metadata is accepted, deskpilot's own fields default
    spotify = tasks["94d95f96-9699-4208-98ba-3c3119edf9c2"]
    assert spotify.snapshot == "os" and spotify.related_apps == ["os"]
    assert spotify.max_turns is None and spotify.solution is None and spotify.tags == []


def test_a_directory_loads_sorted_skipping_underscore_assets(tmp_path):
    (tmp_path / "b.json").write_text(json.dumps(minimal(id="b")))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.json").write_text(json.dumps(minimal(id="a")))
    (tmp_path / "_assets").mkdir()
    (tmp_path / "_assets" / "data.json").write_text("not a task at all")
    (tmp_path / "_notes.json").write_text("[1, 2]")
    tasks = load_tasks(tmp_path)
    assert [t.id for t in tasks] == ["b", "a"]  # b.json sorts before sub/a.json
    assert tasks[1].base_dir == str(tmp_path / "sub") and tasks[1].root_dir == str(tmp_path)


def test_a_jsonl_loads_one_task_per_line(tmp_path):
    path = tmp_path / "suite.jsonl"
    path.write_text(json.dumps(minimal(id="x")) + "\n\n" + json.dumps(minimal(id="y")) + "\n")
    assert [t.id for t in load_tasks(path)] == ["x", "y"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "could not be read as JSON"),
        ("[1, 2]", "expected a JSON object"),
        (json.dumps({"instruction": "x"}), "id: Field required"),
        (json.dumps(minimal(id="../evil")), "id must be"),
        (json.dumps(minimal(max_turns=0)), "max_turns"),
        (
            json.dumps(minimal(solution=[{"content": [{"text": "x"}], "stop_reason": "end_turn"}])),
            "'type'",
        ),
    ],
)
def test_a_file_that_is_not_a_task_is_refused_with_its_name(tmp_path, content, message):
    (tmp_path / "broken.json").write_text(content)
    with pytest.raises(ConfigError, match=r"broken\.json") as info:
        load_tasks(tmp_path)
    assert message in str(info.value)


def test_missing_suites_bad_lines_and_duplicate_ids_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="No task suite at"):
        load_tasks(tmp_path / "nowhere")
    bad = tmp_path / "s.jsonl"
    bad.write_text(json.dumps(minimal()) + "\n{oops\n")
    with pytest.raises(ConfigError, match=r"s\.jsonl line 2 is not JSON"):
        load_tasks(bad)
    dup = tmp_path / "d.jsonl"
    dup.write_text(json.dumps(minimal()) + "\n" + json.dumps(minimal()) + "\n")
    with pytest.raises(ConfigError, match="repeats the task id 't1'"):
        load_tasks(dup)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"evaluator": None}, "no evaluator"),
        ({"config": [{"type": "reboot", "parameters": {}}]}, "step type 'reboot' is not supported"),
        ({"config": [{"type": "sleep", "parameters": {"seconds": 999}}]}, "'seconds' from 0 to 60"),
        ({"config": [{"type": "open", "parameters": {"path": "~/a.xlsx"}}]}, "LibreOffice"),
        (
            {"config": [{"type": "execute", "parameters": {"command": "x", "until": {"a": 1}}}]},
            "until",
        ),
        (
            {"config": [{"type": "upload_file", "parameters": {"files": [{"path": "x"}]}}]},
            "every file needs 'local_path' and 'path'",
        ),
        ({"config": [{"type": "activate_window", "parameters": {}}]}, "needs a 'window_name'"),
        (
            {"evaluator": {"func": "compare_table", "result": {"type": "vm_file", "path": "x"}}},
            "metric 'compare_table' is not supported",
        ),
        (
            {"evaluator": {"func": "exact_match", "result": {"type": "accessibility_tree"}}},
            "getter 'accessibility_tree' is not supported",
        ),
        (
            {
                "evaluator": {
                    "func": "exact_match",
                    "result": {"type": "cloud_file", "path": "https://x/y", "dest": "y"},
                }
            },
            "no network",
        ),
        (
            {
                "evaluator": {
                    "func": "compare_text_file",
                    "result": {"type": "vm_file", "path": "x"},
                    "options": {"fuzzy": True},
                }
            },
            "does not take the option(s) ['fuzzy']",
        ),
        (
            {
                "evaluator": {
                    "func": ["exact_match", "exact_match"],
                    "result": [{"type": "rule", "rules": 1}],
                }
            },
            "must be a list of 2 entries",
        ),
        ({"evaluator": {"func": []}}, "func list is empty"),
        (
            {
                "evaluator": {
                    "func": "check_json",
                    "result": {"type": "vm_file", "path": "x"},
                    "expected": {
                        "type": "rule",
                        "rules": {
                            "expect": [{"key": ["a"], "method": "spreadsheet_range", "ref": 1}]
                        },
                    },
                }
            },
            "check_json method 'spreadsheet_range' is not supported",
        ),
        ({"evaluator": {"func": "exact_match"}}, "has no result getter"),
    ],
)
def test_classify_names_the_unsupported_part(change, reason):
    task = parse_task(minimal(**change), where="t.json")
    assert task.unsupported is not None and reason in task.unsupported, task.unsupported


def test_lists_of_funcs_zip_into_checks():
    ev = Evaluator.model_validate(
        {
            "func": ["exact_match", "check_include_exclude"],
            "conj": "or",
            "result": [{"type": "rule", "rules": "a"}, {"type": "rule", "rules": "b"}],
            "expected": [
                {"type": "rule", "rules": {"expected": "a"}},
                {"type": "rule", "rules": {}},
            ],
            "options": [{}, {}],
        }
    )
    checks = ev.checks()
    assert [c.func for c in checks] == ["exact_match", "check_include_exclude"]
    assert checks[1].result == {"type": "rule", "rules": "b"} and ev.conj == "or"
    assert classify(Task(id="x", instruction="i", evaluator=ev)) is None


def test_localized_maps_osworld_home_and_the_placeholder():
    task = parse_task(
        minimal(
            instruction="Edit /home/user/notes.txt and {HOME}/b, not /home/username/c.",
            config=[{"type": "execute", "parameters": {"command": ["ls", "/home/user"]}}],
            solution=[
                {
                    "content": [
                        {"type": "tool_use", "name": "bash", "input": {"command": "cat {HOME}/x"}}
                    ],
                    "stop_reason": "tool_use",
                }
            ],
        ),
        where="t.json",
        base_dir=Path("/suite"),
    )
    local = task.localized("/tmp/home-1/")
    assert (
        local.instruction == "Edit /tmp/home-1/notes.txt and /tmp/home-1/b, not /home/username/c."
    )
    assert local.config[0].parameters["command"] == ["ls", "/tmp/home-1"]
    assert local.solution is not None
    assert local.solution[0].content[0]["input"]["command"] == "cat /tmp/home-1/x"
    assert local.base_dir == "/suite" and task.instruction.startswith("Edit /home/user")
    with pytest.raises(ConfigError, match="absolute"):
        task.localized("relative/home")


def test_solution_responses_are_full_messages_api_bodies():
    task = parse_task(
        minimal(
            solution=[
                {
                    "content": [
                        {"type": "text", "text": "Looking."},
                        {"type": "tool_use", "name": "computer", "input": {"action": "screenshot"}},
                        {
                            "type": "tool_use",
                            "id": "toolu_mine",
                            "name": "bash",
                            "input": {"command": "ls"},
                        },
                    ],
                    "stop_reason": "tool_use",
                },
                {"content": [{"type": "text", "text": "Done."}], "stop_reason": "end_turn"},
            ]
        ),
        where="t.json",
    )
    first, last = task.solution_responses()
    assert first["type"] == "message" and first["role"] == "assistant" and first["usage"] == "auto"
    assert [b.get("id") for b in first["content"]] == [None, "toolu_sol_01_2", "toolu_mine"]
    assert last["stop_reason"] == "end_turn" and last["content"][0]["text"] == "Done."
    with pytest.raises(ConfigError, match="has no solution"):
        parse_task(minimal(), where="t.json").solution_responses()


def test_the_example_in_docs_eval_md_is_a_runnable_task():
    doc = (Path(__file__).parent.parent / "docs" / "eval.md").read_text("utf-8")
    example = doc.split("```json\n", 1)[1].split("```", 1)[0]
    task = parse_task(json.loads(example), where="docs/eval.md")
    assert task.runnable and task.solution and task.solution[-1].stop_reason == "end_turn"
