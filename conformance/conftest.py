"""Fixtures, options, requirement levels, verdicts and reports.

Options (also accepted by conformance/run): --url, --http, --redis, --url2,
--ca FILE, --insecure (a wss:// or https:// testee: trust only the CA file,
host names checked; or verify nothing, with a warning),
--profile, --strict, --report DIR, --matrix, --spec DIR, --testee-config
FILE, --seed N, --robust-count N, and the harness hooks --redis-restart-cmd,
--redis-stop-cmd, --redis-start-cmd, --redis-pause-cmd, --redis-resume-cmd,
--worker-kill-cmd, --worker-start-cmd, --shutdown-url, --shutdown-cmd.

Verdicts follow the keyword of the requirements a test names (the strongest
wins): a failed MUST fails the run; a failed SHOULD is reported as "warn"
(pytest: xfailed) and fails the run only with --strict; a failed MAY is
informational. A skipped MUST test of a requested profile is a failure
(TST-012): a testee that cannot be driven through a MUST is not shown
conformant. Tests of profiles that were not requested are deselected at
collection (reported as "not-requested"), so a pytest skip always means a
test that could not run.
"""

import collections
import html
import json
import os
import random
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mwclient  # noqa: E402
import reqs as reqmod  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PROFILES = ("core", "channel", "multi", "robustness", "faults", "auth", "tls")
RESULTS = []


def pytest_addoption(parser):
    g = parser.getgroup("matchwire", "Matchwire conformance")
    g.addoption("--url", default=os.environ.get("MW_URL"),
                help="ws://HOST:PORT/realtime or wss://HOST:PORT/realtime of the testee")
    g.addoption("--http", default=None, help="HTTP base URL (default: from --url; https for wss)")
    g.addoption("--ca", default=None, metavar="FILE",
                help="wss/https: trust only the CA certificates in FILE (PEM); host names are checked")
    g.addoption("--insecure", action="store_true",
                help="wss/https: verify no certificate (a warning is printed; TLS tests that need "
                     "verification skip)")
    g.addoption("--redis", default=None, help="redis://HOST:PORT of the testee's channel (profile channel)")
    g.addoption("--url2", default=None, help="second gateway sharing the Redis (profile multi)")
    g.addoption("--profile", default="core", help="comma list of: " + ",".join(PROFILES))
    g.addoption("--mw-strict", action="store_true", help="failed SHOULDs fail the run (conformance/run --strict)")
    g.addoption("--report", default=None, metavar="DIR", help="write report.xml, report.json, report.html")
    g.addoption("--matrix", action="store_true", help="print requirement -> tests and exit")
    g.addoption("--spec", default=None, metavar="DIR", help="spec directory (default ../spec)")
    g.addoption("--testee-config", default=None, metavar="FILE", help="the testee's declaration (JSON)")
    g.addoption("--seed", type=int, default=None, help="robustness seed (replay)")
    g.addoption("--robust-count", type=int, default=3000, help="mutated envelopes per robustness run")
    g.addoption("--redis-restart-cmd", default=None, help="command that restarts the testee's Redis")
    g.addoption("--redis-stop-cmd", default=None,
                help="command that stops the testee's Redis (data kept; profile multi, CHN-101)")
    g.addoption("--redis-start-cmd", default=None,
                help="command that starts the testee's Redis again after --redis-stop-cmd")
    g.addoption("--redis-pause-cmd", default=None,
                help="command that stalls the testee's Redis, connections kept (e.g. kill -STOP PID; "
                     "profile faults, TST-019)")
    g.addoption("--redis-resume-cmd", default=None,
                help="command that resumes the Redis stalled by --redis-pause-cmd (e.g. kill -CONT PID)")
    g.addoption("--worker-kill-cmd", default=None,
                help="command that kills the testee's worker abruptly (e.g. kill -9 PID; profile faults, TST-023)")
    g.addoption("--worker-start-cmd", default=None,
                help="command that starts the testee's worker again after --worker-kill-cmd")
    g.addoption("--shutdown-url", default=None,
                help="ws:// URL of a dedicated testee instance that --shutdown-cmd shuts down (MSG-099)")
    g.addoption("--shutdown-cmd", default=None,
                help="command that makes the --shutdown-url instance shut down (e.g. kill -TERM PID)")
    g.addoption("--redis-proxy", default=None, metavar="HOST:PORT",
                help="control port of conformance/resp_proxy.py between the --url gateway and its Redis "
                     "(profile channel, TST-030)")


def pytest_configure(config):
    config.addinivalue_line("markers", "req(*ids): requirement ids this test verifies")
    config.addinivalue_line("markers", "profile(name): core, channel, multi, robustness or faults")
    spec = config.getoption("--spec") or reqmod.default_spec_dir()
    config._mw_reqs = reqmod.parse_spec(spec)
    config._mw_spec = spec
    config._mw_profiles = [p.strip() for p in config.getoption("--profile").split(",") if p.strip()]
    for p in config._mw_profiles:
        if p not in PROFILES:
            raise pytest.UsageError("unknown profile %r (known: %s)" % (p, ", ".join(PROFILES)))
    seed = config.getoption("--seed")
    config._mw_seed = seed if seed is not None else random.SystemRandom().randrange(1, 2 ** 31)
    rep = config.getoption("--report")
    if rep:
        os.makedirs(rep, exist_ok=True)
        if not getattr(config.option, "xmlpath", None):
            config.option.xmlpath = os.path.join(rep, "report.xml")
    if config.getoption("--matrix"):
        config.option.verbose = -1
    if config.getoption("--ca") and config.getoption("--insecure"):
        raise pytest.UsageError("--ca and --insecure exclude each other")
    if config.getoption("--ca") and not os.path.isfile(config.getoption("--ca")):
        raise pytest.UsageError("--ca %s: no such file" % config.getoption("--ca"))
    if config.getoption("--insecure"):
        sys.stderr.write("WARNING: --insecure: the testee's TLS certificate is NOT verified; "
                         "a result says nothing about its certificate\n")


def level_of(config, ids):
    levels = [config._mw_reqs[i].level for i in ids if i in config._mw_reqs]
    for lvl in reqmod.LEVELS:
        if lvl in levels:
            return lvl
    return "MUST" if ids else "NONE"


def item_ids(item):
    ids = []
    for m in item.iter_markers("req"):
        ids.extend(m.args)
    return sorted(set(ids))


def item_profile(item):
    m = item.get_closest_marker("profile")
    return m.args[0] if m else "core"


@pytest.hookimpl(hookwrapper=True)
def pytest_collection_modifyitems(session, config, items):
    """Before -k/-m deselection (so the traceability check and the matrix
    see every test): ids, levels and profiles of all tests. After it: the
    tests of profiles that were not requested are deselected (TST-012:
    reported as not-requested, never shown as skips)."""
    config._mw_all = {}
    for it in items:
        it._mw_ids = item_ids(it)
        it._mw_level = level_of(config, it._mw_ids)
        it._mw_profile = item_profile(it)
        for i in it._mw_ids:
            config._mw_all.setdefault(i, []).append(it.nodeid)
    yield
    if config.getoption("--matrix"):
        return
    kept, dropped = [], []
    for it in items:
        (kept if it._mw_profile in config._mw_profiles else dropped).append(it)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
    for it in dropped:
        RESULTS.append({
            "nodeid": it.nodeid, "name": it.nodeid.split("::")[-1], "module": it.nodeid.split("::")[0],
            "requirements": it._mw_ids, "level": it._mw_level, "verdict": "not-requested",
            "phase": "setup", "reason": "profile %s not requested" % it._mw_profile, "duration": 0.0,
            "wire": [],
        })


def pytest_runtestloop(session):
    config = session.config
    if not config.getoption("--matrix"):
        return None
    by = collections.defaultdict(list)
    for i, nodes in config._mw_all.items():
        by[i] = [n.split("::", 1)[-1] for n in nodes]
    rows = reqmod.matrix(config._mw_reqs, by, reqmod.load_elsewhere(os.path.join(HERE, "coverage_elsewhere.json")))
    tw = config.get_terminal_writer()
    tw.line(reqmod.format_matrix(rows))
    unknown = sorted(set(by) - set(config._mw_reqs))
    if unknown:
        tw.line("tests name unknown ids: " + ", ".join(unknown))
    return True


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------

@pytest.fixture(scope="session")
def testee(pytestconfig):
    url = pytestconfig.getoption("--url")
    if not url:
        pytest.skip("no --url given")
    decl = {}
    path = pytestconfig.getoption("--testee-config")
    if path:
        with open(path, encoding="utf-8") as f:
            decl = json.load(f)
    return mwclient.Testee(url, pytestconfig.getoption("--http"), pytestconfig.getoption("--redis"),
                           pytestconfig.getoption("--url2"), decl, ca=pytestconfig.getoption("--ca"),
                           insecure=pytestconfig.getoption("--insecure"))


@pytest.fixture
def conns(testee):
    """Factory of WebSocket connections, all closed at teardown."""
    made = []

    def make(**kw):
        ws = mwclient.WS(testee, **kw)
        made.append(ws)
        return ws
    yield make
    for ws in made:
        ws.close()


@pytest.fixture
def ws(conns):
    return conns()


@pytest.fixture
def rds(testee):
    """A client of the testee's Redis (--redis), for the channel profiles:
    the suite acts as a foreign worker or gateway through it (channel.md)."""
    if not testee.redis:
        pytest.skip("this profile needs --redis")
    import redis
    r = redis.Redis.from_url(testee.redis, socket_timeout=testee.timeout + 2)
    r.ping()
    yield r
    r.close()


def hook(config, name, what):
    """A harness hook (a shell command); skips when it is not given, which
    fails a MUST test of a requested profile (TST-012)."""
    cmd = config.getoption(name)
    if not cmd:
        pytest.skip("no %s: the harness must provide %s (spec/testing.md)" % (name, what))
    return cmd


@pytest.fixture
def queue(testee):
    """A fresh queue name (default match size), so tests never share tickets."""
    return mwclient.uniq("cf")


@pytest.fixture(scope="session")
def seed(pytestconfig):
    return pytestconfig._mw_seed


def pytest_runtest_setup(item):
    """A fresh wire log per test (profiles were chosen at collection)."""
    mwclient.WIRE["log"] = collections.deque(maxlen=60)
    mwclient.WIRE["t0"] = time.monotonic()


def needs_timer(testee, name, seconds):
    """Skips (a MUST skip is a failure, TST-012) when a declared timer is too
    long to wait for."""
    if seconds is None or seconds > mwclient.LONGEST_WAIT:
        pytest.skip("declared %s=%s is over %ds: declare a shorter one (spec/testing.md)"
                    % (name, seconds, mwclient.LONGEST_WAIT))


# ---------------------------------------------------------------------------
# Verdicts
# ---------------------------------------------------------------------------

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    level = getattr(item, "_mw_level", "MUST")
    rep._mw_ids = getattr(item, "_mw_ids", [])
    rep._mw_level = level
    rep._mw_verdict = None
    rep._mw_reason = ""
    strict = item.config.getoption("--mw-strict")
    if rep.failed and call.when in ("setup", "call"):
        reason = _short(rep)
        v = reqmod.verdict(level, "failed", strict)
        if v in ("warn", "info"):
            rep.outcome = "skipped"
            rep.wasxfail = "%s not met (non-strict): %s" % (level, reason)
        rep._mw_verdict, rep._mw_reason = v, reason
    elif rep.skipped and not hasattr(rep, "wasxfail"):
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        v = reqmod.verdict(level, "skipped", strict)
        if v == "fail":
            rep.outcome = "failed"
            rep.longrepr = "%s test skipped in a requested profile (TST-012): %s" % (level, reason)
        rep._mw_verdict, rep._mw_reason = v, reason
    elif rep.passed and call.when == "call":
        rep._mw_verdict = "pass"
    if call.when == "call" or rep._mw_verdict in ("fail", "skip") or (rep.failed and call.when == "setup"):
        rep._mw_wire = list(mwclient.WIRE["log"])


def _short(rep):
    try:
        c = rep.longrepr.reprcrash
        return c.message.split("\n")[0][:500]
    except AttributeError:
        return str(rep.longrepr).strip().split("\n")[-1][:500]


def pytest_runtest_logreport(report):
    v = getattr(report, "_mw_verdict", None)
    if v is None:
        return
    if report.when != "call" and v == "pass":
        return
    RESULTS.append({
        "nodeid": report.nodeid,
        "name": report.nodeid.split("::")[-1],
        "module": report.nodeid.split("::")[0],
        "requirements": report._mw_ids,
        "level": report._mw_level,
        "verdict": v,
        "phase": report.when,
        "reason": report._mw_reason,
        "duration": round(report.duration, 4),
        "wire": getattr(report, "_mw_wire", []),
    })


def pytest_report_header(config):
    lines = ["matchwire: profiles=%s seed=%d spec=%s requirements=%d" % (
        ",".join(config._mw_profiles), config._mw_seed, config._mw_spec, len(config._mw_reqs))]
    if config.getoption("--insecure"):
        lines.append("matchwire: WARNING --insecure: TLS certificates are not verified")
    elif config.getoption("--ca"):
        lines.append("matchwire: TLS trust anchors: %s (host names checked)" % config.getoption("--ca"))
    return lines


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if config.getoption("--matrix"):
        return
    counts = collections.Counter(r["verdict"] for r in RESULTS)
    terminalreporter.write_line("matchwire verdicts: " + ", ".join(
        "%s=%d" % (k, counts.get(k, 0)) for k in ("pass", "fail", "warn", "info", "skip", "not-requested")))
    terminalreporter.write_line("matchwire robustness seed: %d (replay with --seed %d)" % (
        config._mw_seed, config._mw_seed))
    rep = config.getoption("--report")
    if rep:
        write_reports(config, rep, counts)
        terminalreporter.write_line("matchwire report: %s/report.{json,html,xml}" % rep)


# ---------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------

def write_reports(config, d, counts):
    idx = {
        "schema": "matchwire-conformance-report/1",
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "testee": {"url": config.getoption("--url"), "url2": config.getoption("--url2"),
                   "redis": config.getoption("--redis"), "ca": config.getoption("--ca"),
                   "insecure": bool(config.getoption("--insecure"))},
        "profiles": config._mw_profiles,
        "strict": bool(config.getoption("--mw-strict")),
        "seed": config._mw_seed,
        "summary": {k: counts.get(k, 0) for k in ("pass", "fail", "warn", "info", "skip", "not-requested")},
        "verdict": "fail" if counts.get("fail") else "pass",
        "tests": RESULTS,
    }
    with open(os.path.join(d, "report.json"), "w", encoding="utf-8") as f:
        json.dump(idx, f, indent=1)
    with open(os.path.join(d, "report.html"), "w", encoding="utf-8") as f:
        f.write(render_html(idx, getattr(config, "_mw_reqs", None)))


def render_html(idx, reqs=None):
    """report.html (conformance/report_html.py): per-requirement summary,
    failures first, grouped by document and section, verdict filter."""
    import report_html
    return report_html.render(idx, reqs)
