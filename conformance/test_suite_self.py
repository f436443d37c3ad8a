"""The suite's own rules (spec/testing.md): requirement levels, verdicts,
reports, seeded replay. Pure checks of conformance/ code; no testee needed."""

import json
import os
import random
import subprocess
import sys

import pytest

import conftest
import reqs as reqmod
import test_robustness

pytestmark = pytest.mark.profile("core")
HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.mark.req("TST-040")
def test_levels_from_keywords(tmp_path):
    (tmp_path / "x.md").write_text(
        "- [MSG-901] A server MUST do a\n  thing and MAY do another.\n"
        "- [MSG-902] A client SHOULD NOT\n  do that.\n\n- [MSG-903] It is OPTIONAL.\n"
        "- [MSG-904] Replies `pong`.\n## h\n- [CHN-905] RECOMMENDED.\n")
    r = reqmod.parse_spec(str(tmp_path))
    assert {k: v.level for k, v in r.items()} == {
        "MSG-901": "MUST", "MSG-902": "SHOULD", "MSG-903": "MAY", "MSG-904": "MUST", "CHN-905": "SHOULD"}
    assert r["MSG-904"].implicit and not r["MSG-901"].implicit
    assert "another" in r["MSG-901"].text


@pytest.mark.req("TST-012", "TST-020", "TST-021", "TST-022")
@pytest.mark.parametrize("level,outcome,strict,nr,want", [
    ("MUST", "failed", False, False, "fail"), ("SHOULD", "failed", False, False, "warn"),
    ("SHOULD", "failed", True, False, "fail"), ("MAY", "failed", True, False, "info"),
    ("MUST", "skipped", False, False, "fail"), ("MUST", "skipped", False, True, "not-requested"),
    ("SHOULD", "skipped", False, False, "skip"), ("SHOULD", "skipped", True, False, "fail"),
    ("MUST", "passed", False, False, "pass"),
])
def test_verdicts(level, outcome, strict, nr, want):
    assert reqmod.verdict(level, outcome, strict, nr) == want


@pytest.mark.req("TST-020")
def test_test_level_is_strongest(pytestconfig):
    assert conftest.level_of(pytestconfig, ["MSG-097", "MSG-001"]) == "MUST"
    assert conftest.level_of(pytestconfig, ["MSG-097"]) == "SHOULD"


@pytest.mark.req("TST-050")
def test_reports_follow_schema(tmp_path, pytestconfig):
    with open(os.path.join(HERE, "report.schema.json"), encoding="utf-8") as f:
        schema = json.load(f)
    saved = list(conftest.RESULTS)
    try:
        conftest.RESULTS[:] = [{"nodeid": "a.py::t", "name": "t", "module": "a.py", "requirements": ["MSG-001"],
                                "level": "MUST", "verdict": "fail", "phase": "call", "reason": "boom <x>",
                                "duration": 0.1, "wire": [{"t": 0.0, "conn": "ws1", "dir": "send",
                                                           "kind": "text", "size": 2, "text": "{}"}]}]
        conftest.write_reports(pytestconfig, str(tmp_path), {"fail": 1})
    finally:
        conftest.RESULTS[:] = saved
    idx = json.loads((tmp_path / "report.json").read_text())
    for k in schema["required"]:
        assert k in idx, "report.json lacks %s" % k
    for k in schema["properties"]["tests"]["items"]["required"]:
        assert k in idx["tests"][0], "test entry lacks %s" % k
    assert idx["verdict"] == "fail"
    html = (tmp_path / "report.html").read_text()
    assert "boom &lt;x&gt;" in html and "ws1" in html and "<script" not in html


@pytest.mark.req("TST-051")
def test_seed_replays(seed):
    a = [test_robustness.mutate(random.Random(seed)) for _ in range(1)]
    r1, r2 = random.Random(seed), random.Random(seed)
    assert [test_robustness.mutate(r1) for _ in range(200)] == [test_robustness.mutate(r2) for _ in range(200)]
    assert a


@pytest.mark.req("TST-012")
def test_unrequested_profiles_are_deselected(tmp_path):
    """Tests of profiles that were not requested are deselected (never shown
    as skips) and reported as not-requested."""
    cmd = [sys.executable, "-m", "pytest", HERE, "-p", "no:cacheprovider", "--rootdir", HERE, "-q", "-rs",
           "--profile", "core", "--report", str(tmp_path),
           "-k", "test_levels_from_keywords or test_seed_payload_reaches_watcher or test_redis_restart"]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-2000:]
    tail = r.stdout.strip().split("\n")[-1]
    assert "1 passed" in tail and "deselected" in tail and "skipped" not in tail, tail
    idx = json.loads((tmp_path / "report.json").read_text())
    nr = {t["name"] for t in idx["tests"] if t["verdict"] == "not-requested"}
    assert nr == {"test_seed_payload_reaches_watcher", "test_redis_restart"}, nr
    assert idx["summary"]["not-requested"] == len([t for t in idx["tests"] if t["verdict"] == "not-requested"])
    assert idx["summary"]["skip"] == 0 and idx["summary"]["pass"] == 1, idx["summary"]
