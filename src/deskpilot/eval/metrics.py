"""Metrics: compare what a getter read with what the task expects; a score from 0 to 1.

Each metric is called OSWorld's way, ``metric(result, expected, **options)`` (or
``metric(result, **options)`` when the task has no ``expected``), and follows the rule of
the OSWorld function of the same name (https://github.com/xlang-ai/OSWorld,
desktop_env/evaluators/metrics/general.py, vscode.py, docs.py). A ``result`` of None
(missing file, timed-out command) scores 0. Each returns a :class:`Score`: the value and
the evidence (what was compared), for the results file.

- ``exact_match(result, rules)``: ``result == rules["expected"]``.
- ``fuzzy_match(result, rules)``: similarity of the two strings, ``2 * matches / total
  length`` (:class:`difflib.SequenceMatcher`, OSWorld uses rapidfuzz's ``fuzz.ratio`` /
  100, the same Indel ratio; difflib's matching blocks can count slightly fewer matches).
- ``check_include_exclude(result, rules)``: every ``rules["include"]`` string is in
  ``result`` and no ``rules["exclude"]`` string is.
- ``check_list(path, rules)``: every ``rules["expect"]`` regex matches some line of the file
  and no ``rules["unexpect"]`` regex matches any line.
- ``file_contains(path, rules)``: every ``rules["expected"]`` string is in the file.
- ``diff_text_file(path, expected_path)``: line-level similarity ratio of the two files.
- ``compare_text_file(path, expected_path, ignore_blanks=False, ignore_case=False)``: 1 when
  the texts are equal (runs of blanks made one space and the ends stripped with
  ``ignore_blanks``, lower-cased with ``ignore_case``).
- ``check_json(path, rules)``: each ``rules["expect"]`` entry ``{"key": [k1, k2, ...],
  "method": m, "ref": r}`` holds for the value at that key path (a missing key fails), and
  no ``rules["unexpect"]`` entry does; methods ``eq ne lt le gt ge`` (operator), ``re`` /
  ``re.IGNORECASE`` ... (``re.search``), ``approx:T`` (``|value - ref| <= T``),
  ``str_set_eq`` (same set of strings).
- ``literal_match(result, expected, type="str"|"list", ignore_case=False)``: ``str()`` equal
  (element-wise for lists).
- ``infeasible()``: handled by the checker (:mod:`deskpilot.eval.checker`): 1 only when
  the agent's final answer starts with ``INFEASIBLE``.
"""

from __future__ import annotations

import difflib
import json
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .context import tail

__all__ = ["METRIC_TYPES", "Score", "call_metric", "check_metric"]

MAX_FILE_BYTES = 16 * 2**20


@dataclass(frozen=True, slots=True)
class Score:
    """A metric's verdict: ``value`` from 0.0 to 1.0 and ``evidence``, one or two sentences
    saying what was compared (values cut to a few hundred characters)."""

    value: float
    evidence: str


def _show(value: Any) -> str:
    return tail(repr(value), 200)


def _read(path: Any) -> str | None:
    if not isinstance(path, str | Path) or not path:
        return None
    p = Path(path)
    if not p.is_file() or p.stat().st_size > MAX_FILE_BYTES:
        return None
    return p.read_text("utf-8", errors="replace")


def _no_result(what: str = "result") -> Score:
    return Score(0.0, f"There was no {what} to compare (missing file or failed command).")


def exact_match(result: Any, rules: dict[str, Any]) -> Score:
    """1 when ``result == rules["expected"]``."""
    expected = rules.get("expected")
    ok = result == expected
    return Score(
        float(ok), f"result {_show(result)} {'==' if ok else '!='} expected {_show(expected)}"
    )


def fuzzy_match(result: Any, rules: dict[str, Any]) -> Score:
    """The similarity ratio (0-1) of ``str(result)`` and ``rules["expected"]``."""
    if result is None:
        return _no_result()
    expected = str(rules.get("expected", ""))
    ratio = difflib.SequenceMatcher(None, str(result), expected, autojunk=False).ratio()
    return Score(ratio, f"similarity {ratio:.3f} of result {_show(result)} and {_show(expected)}")


def check_include_exclude(result: Any, rules: dict[str, Any]) -> Score:
    """1 when every ``include`` string is in ``result`` and no ``exclude`` string is."""
    if result is None:
        return _no_result()
    text = str(result)
    missing = [s for s in rules.get("include", []) if s not in text]
    present = [s for s in rules.get("exclude", []) if s in text]
    ok = not missing and not present
    detail = (
        "all included strings present, no excluded one"
        if ok
        else (
            (f"missing {missing!r}" if missing else "")
            + ("; " if missing and present else "")
            + (f"excluded but present {present!r}" if present else "")
        )
    )
    return Score(float(ok), f"{detail} in {_show(text)}")


def check_list(result: Any, rules: dict[str, Any]) -> Score:
    """1 when each ``expect`` regex matches a line of the file and no ``unexpect`` one does."""
    text = _read(result)
    if text is None:
        return _no_result("file")
    lines = text.splitlines()
    missing = [p for p in rules.get("expect", []) if not any(re.search(p, ln) for ln in lines)]
    found = [p for p in rules.get("unexpect", []) if any(re.search(p, ln) for ln in lines)]
    ok = not missing and not found
    return Score(
        float(ok),
        f"{len(lines)} lines; expected patterns missing: {missing or 'none'}; "
        f"unexpected patterns found: {found or 'none'}",
    )


def file_contains(result: Any, rules: dict[str, Any]) -> Score:
    """1 when every ``rules["expected"]`` string is in the file."""
    text = _read(result)
    if text is None:
        return _no_result("file")
    missing = [s for s in rules.get("expected", []) if s not in text]
    return Score(
        float(not missing),
        (f"missing {missing!r}" if missing else "all expected strings present")
        + f" in the file {_show(text)}",
    )


def diff_text_file(result: Any, expected: Any) -> Score:
    """The line-level similarity ratio (0-1) of the two files."""
    a, b = _read(result), _read(expected)
    if a is None or b is None:
        return _no_result("file" if a is None else "expected file")
    ratio = difflib.SequenceMatcher(None, a.splitlines(), b.splitlines(), autojunk=False).ratio()
    return Score(ratio, f"line similarity {ratio:.3f} of {_show(a)} and {_show(b)}")


def _blanks(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[\t\n]", " ", text).strip())


def compare_text_file(
    result: Any, expected: Any, *, ignore_blanks: bool = False, ignore_case: bool = False
) -> Score:
    """1 when the two files' texts are equal (after the ``ignore_*`` normalisations)."""
    a, b = _read(result), _read(expected)
    if a is None or b is None:
        return _no_result("file" if a is None else "expected file")
    if ignore_blanks:
        a, b = _blanks(a), _blanks(b)
    if ignore_case:
        a, b = a.lower(), b.lower()
    ok = a == b
    return Score(float(ok), f"file {_show(a)} {'==' if ok else '!='} expected {_show(b)}")


_COMPARE = {"eq", "ne", "lt", "le", "gt", "ge"}


def _rule_holds(value: Any, rule: dict[str, Any]) -> bool:
    method, ref = str(rule.get("method", "eq")), rule.get("ref")
    if method == "re" or method.startswith("re."):
        flags = re.RegexFlag(0)
        for name in method.split(".")[1:]:
            flags |= getattr(re, name)
        return isinstance(value, str) and re.search(str(ref), value, flags) is not None
    if method in _COMPARE:
        try:
            return bool(getattr(operator, method)(value, ref))
        except TypeError:
            return False
    if method.startswith("approx:"):
        try:
            return abs(float(value) - float(str(ref))) <= float(method.split(":", 1)[1])
        except (TypeError, ValueError):
            return False
    if method == "str_set_eq":
        return (
            isinstance(value, list)
            and isinstance(ref, list)
            and set(map(str, value)) == set(map(str, ref))
        )
    raise ValueError(f"unknown check_json method {method!r}")


_MISSING = object()


def _at(data: Any, keys: list[Any]) -> Any:
    for key in keys:
        try:
            data = data[key]
        except (KeyError, IndexError, TypeError):
            return _MISSING
    return data


def check_json(result: Any, rules: dict[str, Any]) -> Score:
    """1 when every ``expect`` rule holds and no ``unexpect`` rule does (see module doc)."""
    text = _read(result)
    if text is None:
        return _no_result("file")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return Score(0.0, f"the file is not JSON ({exc}): {_show(text)}")
    failed = []
    for rule in rules.get("expect", []):
        value = _at(data, list(rule.get("key", [])))
        if value is _MISSING or not _rule_holds(value, rule):
            failed.append(
                f"expected {rule.get('key')} {rule.get('method')} {_show(rule.get('ref'))}, got {'nothing' if value is _MISSING else _show(value)}"
            )
    for rule in rules.get("unexpect", []):
        value = _at(data, list(rule.get("key", [])))
        if value is not _MISSING and _rule_holds(value, rule):
            failed.append(
                f"unexpected {rule.get('key')} {rule.get('method')} {_show(rule.get('ref'))} holds"
            )
    return Score(
        float(not failed), "; ".join(failed) if failed else f"all JSON rules hold in {_show(data)}"
    )


def literal_match(
    result: Any, expected: Any, *, type: str = "str", ignore_case: bool = False
) -> Score:
    """1 when ``str(result) == str(expected)`` (element-wise for ``type="list"``)."""

    def norm(v: Any) -> str:
        return str(v).lower() if ignore_case else str(v)

    if type == "list":
        ok = (
            isinstance(result, list | tuple)
            and isinstance(expected, list | tuple)
            and [norm(v) for v in result] == [norm(v) for v in expected]
        )
    else:
        ok = norm(result) == norm(expected)
    return Score(
        float(ok), f"result {_show(result)} {'==' if ok else '!='} expected {_show(expected)}"
    )


_METRICS: dict[str, Callable[..., Score]] = {
    "exact_match": exact_match,
    "fuzzy_match": fuzzy_match,
    "check_include_exclude": check_include_exclude,
    "check_list": check_list,
    "file_contains": file_contains,
    "diff_text_file": diff_text_file,
    "compare_text_file": compare_text_file,
    "check_json": check_json,
    "literal_match": literal_match,
}
_OPTIONS = {
    "compare_text_file": {"ignore_blanks", "ignore_case"},
    "literal_match": {"type", "ignore_case"},
}
METRIC_TYPES: tuple[str, ...] = (*_METRICS, "infeasible")
"""The supported metric names."""


def _json_method_ok(method: Any) -> bool:
    m = str(method)
    if m in _COMPARE or m == "str_set_eq" or m == "re":
        return True
    if m.startswith("re."):
        return all(isinstance(getattr(re, f, None), re.RegexFlag) for f in m.split(".")[1:])
    if m.startswith("approx:"):
        try:
            float(m.split(":", 1)[1])
        except ValueError:
            return False
        return True
    return False


def check_metric(name: str, options: dict[str, Any], rules: Any = None) -> str | None:
    """Why a metric cannot run here (unknown name, unknown option, a ``check_json`` method
    it does not have in ``rules``, the ``rule`` getter's rules when known), or None."""
    if name == "check_json" and isinstance(rules, dict):
        for kind in ("expect", "unexpect"):
            for rule in rules.get(kind) or []:
                method = rule.get("method", "eq") if isinstance(rule, dict) else None
                if not _json_method_ok(method):
                    return f"check_json method {method!r} is not supported here"
    if name not in METRIC_TYPES:
        return f"metric '{name}' is not supported here (supported: {', '.join(METRIC_TYPES)})"
    extra = set(options) - _OPTIONS.get(name, set())
    if extra:
        return f"metric '{name}' does not take the option(s) {sorted(extra)}"
    if name == "literal_match" and options.get("type", "str") not in ("str", "list"):
        return "literal_match's type must be 'str' or 'list'"
    return None


def call_metric(
    name: str, result: Any, expected: Any, options: dict[str, Any], *, has_expected: bool
) -> Score:
    """Call a metric OSWorld's way (``expected`` passed only when the task has one).

    Returns:
        Its :class:`Score`. A metric that raises on malformed input (e.g. an unknown
        ``check_json`` method, a bad regex, rules that are not a dict) scores 0 with the
        error as evidence.

    Raises:
        KeyError: ``name`` is not a metric here (``infeasible`` included: the checker
            handles it).
    """
    fn = _METRICS[name]
    try:
        score = fn(result, expected, **options) if has_expected else fn(result, **options)
    except (ValueError, TypeError, AttributeError, KeyError, re.error, OSError) as exc:
        return Score(0.0, f"{name} could not compare: {type(exc).__name__}: {exc}")
    value = min(1.0, max(0.0, float(score.value)))
    return Score(value, score.evidence)
