"""Eval metrics: each one's pass and fail with its evidence, missing inputs score 0, malformed
rules score 0 with the error, and unknown metrics/options are named."""

from __future__ import annotations

import json

import pytest

from deskpilot.eval.metrics import METRIC_TYPES, call_metric, check_metric


def run(name, result, expected=None, **options):
    return call_metric(name, result, expected, options, has_expected=expected is not None)


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_exact_match():
    assert run("exact_match", "Directory exists.\n", {"expected": "Directory exists.\n"}).value == 1
    miss = run("exact_match", "no\n", {"expected": "Directory exists.\n"})
    assert miss.value == 0 and "!=" in miss.evidence and "'no\\n'" in miss.evidence
    assert run("exact_match", None, {"expected": "x"}).value == 0


def test_fuzzy_match_is_a_ratio():
    assert run("fuzzy_match", "hello world", {"expected": "hello world"}).value == 1
    half = run("fuzzy_match", "abcd", {"expected": "abxy"})
    assert half.value == pytest.approx(0.5) and "similarity 0.500" in half.evidence
    assert run("fuzzy_match", None, {"expected": "x"}).value == 0


def test_check_include_exclude():
    rules = {"include": ["spotify"], "exclude": ["not found"]}
    assert run("check_include_exclude", "/usr/bin/spotify\n", rules).value == 1
    missing = run("check_include_exclude", "", rules)
    assert missing.value == 0 and "missing ['spotify']" in missing.evidence
    excluded = run("check_include_exclude", "spotify: not found", rules)
    assert excluded.value == 0 and "excluded but present ['not found']" in excluded.evidence
    none = run("check_include_exclude", None, rules)
    assert none.value == 0 and "no result" in none.evidence


def test_check_list_matches_lines(tmp_path):
    path = write(tmp_path, "l.txt", "apple 3\nbanana 5\n")
    assert (
        run("check_list", path, {"expect": [r"^apple \d$", "banana"], "unexpect": ["cherry"]}).value
        == 1
    )
    miss = run("check_list", path, {"expect": ["cherry"]})
    assert miss.value == 0 and "['cherry']" in miss.evidence
    assert run("check_list", path, {"unexpect": ["ban"]}).value == 0
    assert run("check_list", str(tmp_path / "none.txt"), {"expect": []}).value == 0


def test_file_contains(tmp_path):
    path = write(tmp_path, "f.txt", "alpha beta")
    assert run("file_contains", path, {"expected": ["alpha", "beta"]}).value == 1
    miss = run("file_contains", path, {"expected": ["gamma"]})
    assert miss.value == 0 and "missing ['gamma']" in miss.evidence
    assert run("file_contains", None, {"expected": []}).value == 0


def test_diff_text_file_is_a_line_ratio(tmp_path):
    a = write(tmp_path, "a.txt", "1\n2\n3\n4\n")
    b = write(tmp_path, "b.txt", "1\n2\nX\nY\n")
    assert run("diff_text_file", a, a).value == 1
    assert run("diff_text_file", a, b).value == pytest.approx(0.5)
    assert run("diff_text_file", str(tmp_path / "no"), a).value == 0


def test_compare_text_file_with_ignore_options(tmp_path):
    a = write(tmp_path, "a.txt", "Hello   World\n\n")
    b = write(tmp_path, "b.txt", "hello world")
    assert run("compare_text_file", a, b).value == 0
    assert run("compare_text_file", a, b, ignore_blanks=True).value == 0
    assert run("compare_text_file", a, b, ignore_case=True).value == 0
    assert run("compare_text_file", a, b, ignore_blanks=True, ignore_case=True).value == 1
    gone = run("compare_text_file", str(tmp_path / "missing.txt"), b)
    assert gone.value == 0 and "no file" in gone.evidence


def test_check_json_rules(tmp_path):
    path = write(
        tmp_path, "s.json", json.dumps({"a": {"b": 3, "name": "Alice"}, "tags": ["x", "y"]})
    )
    ok = {
        "expect": [
            {"key": ["a", "b"], "method": "eq", "ref": 3},
            {"key": ["a", "b"], "method": "approx:0.5", "ref": 3.4},
            {"key": ["a", "name"], "method": "re.IGNORECASE", "ref": "^alice$"},
            {"key": ["tags"], "method": "str_set_eq", "ref": ["y", "x"]},
        ],
        "unexpect": [{"key": ["a", "missing"], "method": "eq", "ref": 1}],
    }
    assert run("check_json", path, ok).value == 1
    miss = run("check_json", path, {"expect": [{"key": ["a", "zzz"], "method": "eq", "ref": 1}]})
    assert miss.value == 0 and "got nothing" in miss.evidence
    assert (
        run("check_json", path, {"expect": [{"key": ["a", "b"], "method": "gt", "ref": 5}]}).value
        == 0
    )
    assert (
        run("check_json", path, {"unexpect": [{"key": ["a", "b"], "method": "eq", "ref": 3}]}).value
        == 0
    )
    bad = write(tmp_path, "bad.json", "{nope")
    assert "not JSON" in run("check_json", bad, ok).evidence


def test_literal_match():
    assert run("literal_match", 3, "3").value == 1
    assert run("literal_match", "ABC", "abc").value == 0
    assert run("literal_match", "ABC", "abc", ignore_case=True).value == 1
    assert run("literal_match", ["A", 1], ("a", "1"), type="list", ignore_case=True).value == 1
    assert run("literal_match", "A", ["A"], type="list").value == 0


def test_malformed_rules_score_zero_with_the_error(tmp_path):
    path = write(tmp_path, "s.json", "{}")
    bad_method = run("check_json", path, {"expect": [{"key": [], "method": "weird", "ref": 1}]})
    assert bad_method.value == 0 and "unknown check_json method 'weird'" in bad_method.evidence
    bad_regex = run("check_list", path, {"expect": ["("]})
    assert bad_regex.value == 0 and "could not compare" in bad_regex.evidence
    not_dict = run("exact_match", "x", ["not", "a", "dict"])
    assert not_dict.value == 0 and "AttributeError" in not_dict.evidence


def test_check_metric_names_unknown_metrics_and_options():
    assert "infeasible" in METRIC_TYPES
    assert check_metric("exact_match", {}) is None
    assert check_metric("compare_text_file", {"ignore_blanks": True}) is None
    assert "not supported here" in (check_metric("compare_pptx_files", {}) or "")
    assert "['x']" in (check_metric("exact_match", {"x": 1}) or "")
    assert "'str' or 'list'" in (check_metric("literal_match", {"type": "dict"}) or "")
    methods = ["eq", "re", "re.IGNORECASE.MULTILINE", "approx:0.1", "str_set_eq"]
    ok = {"expect": [{"key": [], "method": m} for m in methods]}
    assert check_metric("check_json", {}, ok) is None
    for bad in ("re.NOPE", "approx:x", "range.te"):
        rules = {"unexpect": [{"key": [], "method": bad}]}
        assert f"method '{bad}'" in (check_metric("check_json", {}, rules) or "")
    with pytest.raises(KeyError):
        run("infeasible", None)
