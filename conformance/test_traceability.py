"""Traceability (spec/testing.md TST-041): every MUST of spec/*.md is
verified by a test of this suite, or by a named file listed in
coverage_elsewhere.json that really mentions it; every id a test names
exists."""

import os

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
