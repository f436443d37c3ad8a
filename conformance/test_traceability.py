"""Traceability (spec/testing.md TST-041): every MUST of spec/*.md is
verified by a test of this suite, or by a named file listed in
coverage_elsewhere.json that really mentions it; every id a test names
exists. Client requirements (spec/client.md, CLI) are verified by the client
kit's scenarios (conformance/client/scenarios.py, TST-067): reqs.py counts
them through load_elsewhere()."""

import os
import subprocess
import sys

import pytest

import reqs as reqmod

pytestmark = pytest.mark.profile("core")
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _named(session):
    return session.config._mw_all


@pytest.mark.req("TST-041")
def test_every_test_names_an_existing_requirement(request):
    spec = request.config._mw_reqs
    if not spec:
        pytest.skip("no spec directory (--spec)")
    unknown = sorted(set(_named(request.session)) - set(spec))
    assert not unknown, "tests name ids that spec/ does not define: %s" % ", ".join(unknown)


@pytest.mark.req("TST-041")
def test_coverage_elsewhere_entries_are_real(request):
    table = reqmod.load_elsewhere(os.path.join(HERE, "coverage_elsewhere.json"))
    problems = [p for p in (reqmod.check_elsewhere_entry(i, e, ROOT) for i, e in sorted(table.items())) if p]
    problems += ["%s is listed but not defined in spec/" % i for i in table if i not in request.config._mw_reqs]
    assert not problems, "; ".join(problems)


@pytest.mark.req("TST-041")
def test_every_must_is_covered(request):
    spec = request.config._mw_reqs
    if not spec:
        pytest.skip("no spec directory (--spec)")
    by = _named(request.session)
    table = reqmod.load_elsewhere(os.path.join(HERE, "coverage_elsewhere.json"))
    missing = sorted(i for i, r in spec.items() if r.level == "MUST" and i not in by and i not in table)
    assert not missing, "%d MUST requirement(s) without a test: %s" % (len(missing), ", ".join(missing))


def _nested(spec_dir, *args):
    """Runs this suite's own traceability check (only) in a child pytest."""
    cmd = [sys.executable, "-m", "pytest", HERE, "-p", "no:cacheprovider", "--rootdir", HERE, "-q",
           "--spec", str(spec_dir)] + list(args)
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120,
                          cwd=ROOT)


FAKE_SPEC = """# fake
- [TST-041] Every MUST requirement is verified by a test.
- [CHN-998] A binding SHOULD do a thing nobody tests.
- [CHN-997] *withdrawn*: a binding MUST do what nobody asks any more.
"""


@pytest.mark.req("TST-041")
def test_check_fails_on_an_uncovered_must(tmp_path):
    """The check itself: a spec with an untested MUST fails the run and names
    it; the same spec without it passes (SHOULDs and withdrawn ids ask no
    test)."""
    bad, good = tmp_path / "bad", tmp_path / "good"
    bad.mkdir()
    good.mkdir()
    (bad / "x.md").write_text(FAKE_SPEC + "- [CHN-999] A binding MUST do a thing nobody tests.\n")
    (good / "x.md").write_text(FAKE_SPEC)
    r = _nested(bad, "-k", "test_every_must_is_covered")
    assert r.returncode != 0, "an uncovered MUST did not fail the run:\n" + r.stdout[-2000:]
    assert "1 MUST requirement(s) without a test: CHN-999" in r.stdout, r.stdout[-2000:]
    r = _nested(good, "-k", "test_every_must_is_covered")
    assert r.returncode == 0, "a fully covered spec failed the check:\n" + r.stdout[-2000:]
    assert "1 passed" in r.stdout, r.stdout[-2000:]


@pytest.mark.req("TST-067")
def test_client_kit_covers_client_musts(request):
    """Every MUST of client.md is named by a client-kit scenario, and every id
    a scenario names exists in spec/."""
    spec = request.config._mw_reqs
    if not spec:
        pytest.skip("no spec directory (--spec)")
    kit = reqmod.client_kit_coverage()
    unknown = sorted(set(kit) - set(spec))
    assert not unknown, "client-kit scenarios name ids that spec/ does not define: %s" % ", ".join(unknown)
    missing = sorted(i for i, r in spec.items()
                     if i.startswith(reqmod.CLIENT_PREFIX) and r.level == "MUST" and i not in kit)
    assert not missing, "client.md MUSTs without a client-kit scenario: %s" % ", ".join(missing)
