"""report.html read in a real browser (spec/testing.md TST-050): headless
Chromium at 1280 px renders a report of a badly failing foreign server (757
tests, 210 failures, one test name of 400 characters without a break,
payloads of 400 characters) without horizontal overflow, with failures on
the first screen. Needs Debian's `chromium` (scripts/deps.sh). No testee."""

import os
import random
import shutil
import struct
import subprocess

import pytest

import conftest
import reqs as reqmod

pytestmark = pytest.mark.profile("core")
HERE = os.path.dirname(os.path.abspath(__file__))
WIDTH, HEIGHT = 1280, 900


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    pytest.skip("no chromium (Debian package `chromium`, in scripts/deps.sh)")


def run_chromium(tmp_path, *args):
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--no-first-run", "--user-data-dir=%s" % (tmp_path / "profile"), "--window-size=%d,%d" % (WIDTH, HEIGHT),
           "--hide-scrollbars"] + list(args)
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=90)
    return r.stdout


def big_report(reqs):
    rnd = random.Random(17)
    ids = sorted(i for i, r in reqs.items() if r.level == "MUST" and i[:3] in ("MSG", "ENV", "CHN"))
    tests = []
    verdicts = ["not-requested"] * 37 + ["pass"] * 510 + ["fail"] * 210
    rnd.shuffle(verdicts[37:])
    for n, v in enumerate(verdicts):
        name = "test_case_%d[%s]" % (n, "x" * rnd.randint(0, 60))
        if n == 50:
            name = "test_" + "A" * 400  # one very long unbreakable name
        wire = [{"t": k * 0.01, "conn": "ws%d" % k, "dir": "send", "kind": "text", "size": 400,
                 "text": '{"type":"enqueue","v":1,"data":{"pad":"' + "y" * 360 + '"}}'} for k in range(5)]
        tests.append({"nodeid": "test_x.py::" + name, "name": name, "module": "test_x.py",
                      "requirements": rnd.sample(ids, 2), "level": "MUST", "verdict": v, "phase": "call",
                      "reason": ("AssertionError: " + "z" * 500) if v == "fail" else "", "duration": 0.1,
                      "wire": wire if v == "fail" else []})
    summary = {k: verdicts.count(k) for k in ("pass", "fail", "warn", "info", "skip", "not-requested")}
    return {"schema": "matchwire-conformance-report/1", "generated": "2026-12-03T00:00:00Z",
            "testee": {"url": "ws://nest.example:3000/realtime", "url2": None, "redis": None},
            "profiles": ["core"], "strict": False, "seed": 1, "summary": summary, "verdict": "fail",
            "tests": tests}


PROBE = """<script>
(function () {
  var b = document.body, de = document.documentElement;
  var fr = document.querySelector('table tr.v-fail');
  var ft = document.querySelector('tr.t.v-fail');
  b.setAttribute('data-probe', [de.scrollWidth, window.innerWidth,
    fr ? Math.round(fr.getBoundingClientRect().top) : -1,
    ft ? Math.round(ft.getBoundingClientRect().top) : -1,
    document.querySelectorAll('tr.t').length].join(','));
})();
</script>"""


@pytest.mark.req("TST-050")
def test_report_renders_in_chromium(tmp_path, pytestconfig):
    reqs = reqmod.parse_spec(getattr(pytestconfig, "_mw_spec", None) or os.path.join(HERE, "..", "spec"))
    idx = big_report(reqs)
    page = conftest.render_html(idx, reqs)
    assert "<script" not in page, "the report must work without script"
    assert page.index("test_" + "A" * 400) > 0, "a failing long name must be there in full (in <details>)"
    (tmp_path / "report.html").write_text(page, encoding="utf-8")
    (tmp_path / "probe.html").write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom = run_chromium(tmp_path, "--dump-dom", "file://%s" % (tmp_path / "probe.html"))
    probe = dom.split('data-probe="', 1)[1].split('"', 1)[0] if 'data-probe="' in dom else None
    assert probe, "chromium produced no probe result: %r" % dom[:300]
    sw, iw, top_req, top_test, rows = (int(x) for x in probe.split(","))
    assert rows == len(idx["tests"])
    assert sw <= iw, "horizontal overflow at %d px: the page is %d px wide" % (iw, sw)
    assert 0 <= top_req < HEIGHT, "the first failing requirement is at %d px, below the first screen" % top_req
    assert 0 <= top_test < HEIGHT, "the first failing test is at %d px, below the first screen" % top_test
    shot = tmp_path / "report.png"
    run_chromium(tmp_path, "--screenshot=%s" % shot, "file://%s" % (tmp_path / "report.html"))
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack("!II", data[16:24])
    assert (w, h) == (WIDTH, HEIGHT), "screenshot %dx%d" % (w, h)
