"""report.html: what an implementer wants at a glance (spec/testing.md TST-050).

Self-contained, no script: a summary per requirement (which MUSTs fail, how
many tests each), then the tests grouped by document and section with the
requirement text beside them, failures first; long names, reasons and
payloads wrapped or truncated with the full text in <details>; each wire
log collapsible; a filter by verdict made of radio buttons and CSS alone.
The page never scrolls sideways (table-layout fixed, every cell wraps)."""

import collections
import html
import os

VERDICTS = ("fail", "warn", "info", "skip", "pass", "not-requested")
RANK = {v: i for i, v in enumerate(VERDICTS)}
LEVEL_RANK = {"MUST": 0, "SHOULD": 1, "MAY": 2, "NONE": 3}
COLOR = {"pass": "#dfd", "fail": "#fbb", "warn": "#fe9", "info": "#def", "skip": "#eee",
         "not-requested": "#f7f7f7"}
TOP = 8  # failing requirements listed before the rest go into <details>
SHORT = 90  # characters of a name, reason or requirement shown before <details>

CSS = """
*{box-sizing:border-box}
body{font:14px/1.35 sans-serif;margin:0 auto;padding:12px 16px;max-width:100%;overflow-wrap:anywhere}
summary,h3,p,div,span,a{overflow-wrap:anywhere;word-break:break-word}
h1{font-size:20px;margin:4px 0}h2{font-size:17px;margin:18px 0 6px}h3{font-size:15px;margin:14px 0 4px}
table{border-collapse:collapse;width:100%;table-layout:fixed}
td,th{border:1px solid #bbb;padding:3px 6px;vertical-align:top;text-align:left;overflow-wrap:anywhere;
word-break:break-word}
pre{background:#f6f6f6;padding:6px;margin:4px 0;white-space:pre-wrap;overflow-wrap:anywhere;font-size:12px;
max-width:100%}
details>summary{cursor:pointer}code{overflow-wrap:anywhere}
td details{display:inline-block;margin-right:8px;vertical-align:top}td details[open]{display:block}
.v-fail{background:#fbb}.v-warn{background:#fe9}.v-info{background:#def}.v-skip{background:#eee}
.v-pass{background:#dfd}.v-not-requested{background:#f7f7f7;color:#666}
.bad{color:#a00;font-weight:bold}.muted{color:#666;font-size:12px}
.filter{margin:8px 0;position:sticky;top:0;background:#fff;padding:4px 0;border-bottom:1px solid #ddd}
.filter label{margin-right:12px;white-space:nowrap;cursor:pointer;padding:1px 4px;border:1px solid #ccc;
border-radius:3px}
input[name=f]{position:absolute;opacity:0;width:0;height:0}
.c-name{width:34%}.c-req{width:20%}.c-lvl{width:7%}.c-v{width:9%}.c-s{width:6%}.c-r{width:24%}
.rq-id{width:11%}.rq-doc{width:18%}.rq-lvl{width:7%}.rq-n{width:12%}.rq-t{width:52%}
"""


def _e(s):
    return html.escape(str(s), quote=True)


def _clip(text, n=SHORT, pre=False):
    """Short text as is; long text truncated, the whole of it in <details>."""
    text = "" if text is None else str(text)
    if len(text) <= n and "\n" not in text:
        return _e(text)
    body = "<pre>%s</pre>" % _e(text) if pre else "<div>%s</div>" % _e(text)
    return "<details><summary>%s…</summary>%s</details>" % (_e(text.split("\n")[0][:n]), body)


def _section_of(path, line, cache):
    """(document file name, nearest heading above the line)."""
    if not path:
        return "?", ""
    if path not in cache:
        try:
            with open(path, encoding="utf-8") as f:
                cache[path] = f.read().split("\n")
        except OSError:
            cache[path] = []
    heading = ""
    for ln in cache[path][:max(0, (line or 1))][::-1]:
        if ln.startswith("#"):
            heading = ln.lstrip("#").strip()
            break
    return os.path.basename(path), heading


def render(idx, reqs=None):
    reqs = reqs or {}
    tests = idx["tests"]
    cache = {}

    def where(rid):
        r = reqs.get(rid)
        if r is None:
            return ("~other", "")
        return _section_of(getattr(r, "path", None), getattr(r, "line", None), cache)

    def text(rid):
        r = reqs.get(rid)
        return getattr(r, "text", "") if r is not None else ""

    def level(rid):
        r = reqs.get(rid)
        return getattr(r, "level", "MUST") if r is not None else "?"

    # Per requirement: verdict counts of the tests naming it.
    per = collections.defaultdict(collections.Counter)
    for t in tests:
        for rid in t["requirements"]:
            per[rid][t["verdict"]] += 1
    failing = sorted((rid for rid, c in per.items() if c["fail"] or c["warn"]),
                     key=lambda r: (LEVEL_RANK.get(level(r), 9), -per[r]["fail"], r))

    out = ["<!doctype html><html><head><meta charset='utf-8'>"
           "<meta name='viewport' content='width=device-width'><title>Matchwire conformance</title>"
           "<style>%s" % CSS]
    # The verdict filter: one radio per verdict, CSS hides the other rows.
    for v in VERDICTS:
        out.append("#f-%s:checked~main tr.t:not(.v-%s),#f-%s:checked~main section.g:not(.h-%s){display:none}"
                   % (v, v, v, v))
    for v in ("all",) + VERDICTS:
        out.append("#f-%s:checked~.filter label[for=f-%s]{font-weight:bold;text-decoration:underline}" % (v, v))
    out.append("</style></head><body>")
    s = idx["summary"]
    out.append("<h1>Matchwire conformance: <span class='%s'>%s</span></h1>" % (
        "bad" if idx["verdict"] == "fail" else "", _e(idx["verdict"].upper())))
    out.append("<p class='muted'>testee %s; profiles %s; strict %s; seed %s; generated %s</p>" % (
        _e(idx["testee"].get("url")), _e(",".join(idx["profiles"])), _e(idx["strict"]), _e(idx["seed"]),
        _e(idx["generated"])))
    out.append("<p>" + " · ".join("<span class='v-%s'>&nbsp;%s %d&nbsp;</span>" % (k, k, s.get(k, 0))
                                  for k in VERDICTS) + "</p>")

    # Failing requirements first.
    out.append("<h2>Failing requirements (%d)</h2>" % len(failing))
    if failing:
        out.append("<table><tr><th class='rq-id'>requirement</th><th class='rq-lvl'>level</th>"
                   "<th class='rq-doc'>document §</th><th class='rq-n'>tests failing / all</th>"
                   "<th class='rq-t'>text</th></tr>")
        for n, rid in enumerate(failing):
            if n == TOP:  # the rest on demand, so the first failing tests stay on the first screen
                out.append("</table><details><summary>%d more failing requirements</summary><table>"
                           % (len(failing) - TOP))
            c = per[rid]
            doc, sec = where(rid)
            out.append("<tr class='v-%s'><td><a href='#r-%s'>%s</a></td><td>%s</td><td>%s<br>"
                       "<span class='muted'>%s</span></td><td>%d / %d</td><td>%s</td></tr>" % (
                           "fail" if c["fail"] else "warn", _e(rid), _e(rid), _e(level(rid)), _e(doc),
                           _e(sec), c["fail"] + c["warn"], sum(c.values()), _clip(text(rid))))
        out.append("</table>" + ("</details>" if len(failing) > TOP else ""))
    else:
        out.append("<p>none</p>")

    # The filter, then the tests grouped by document and section.
    out.append("<h2>Tests</h2>")
    for v in ("all",) + VERDICTS:
        out.append("<input type='radio' name='f' id='f-%s'%s>" % (v, " checked" if v == "all" else ""))
    out.append("<div class='filter'>Show: " + "".join(
        "<label for='f-%s'>%s (%s)</label>" % (v, v, len(tests) if v == "all" else s.get(v, 0))
        for v in ("all",) + VERDICTS) + "</div>")
    # (the radios precede <main> as its siblings: the ~ selectors above)
    groups = collections.defaultdict(list)
    for i, t in enumerate(tests):
        ids = t["requirements"] or ["-"]
        # A test belongs to the section of its most relevant requirement.
        key = min((where(r) for r in ids), default=("~other", ""))
        groups[key].append((i, t))

    def gkey(item):
        (doc, sec), ts = item
        return (min(RANK.get(t["verdict"], 9) for _, t in ts), doc, sec)

    out.append("<main>")
    for (doc, sec), ts in sorted(groups.items(), key=gkey):
        verdicts = {t["verdict"] for _, t in ts}
        cls = " ".join("h-%s" % v for v in sorted(verdicts))
        c = collections.Counter(t["verdict"] for _, t in ts)
        out.append("<section class='g %s'><h3>%s § %s <span class='muted'>%s</span></h3>" % (
            cls, _e(doc), _e(sec), _e(", ".join("%s %d" % (v, c[v]) for v in VERDICTS if c[v]))))
        out.append("<table><tr><th class='c-name'>test</th><th class='c-req'>requirements</th>"
                   "<th class='c-lvl'>level</th><th class='c-v'>verdict</th><th class='c-s'>s</th>"
                   "<th class='c-r'>reason</th></tr>")
        for i, t in sorted(ts, key=lambda x: (RANK.get(x[1]["verdict"], 9), x[0])):
            name = _clip(t["name"])
            if t["verdict"] in ("fail", "warn", "info"):
                name = "<a href='#t%d'>%s</a>" % (i, _e(t["name"][:SHORT] + ("…" if len(t["name"]) > SHORT else "")))
            reqcell = " ".join(
                "<details id='r-%s'><summary><code>%s</code></summary><span class='muted'>%s</span></details>"
                % (_e(r), _e(r), _e(text(r))) if text(r) else "<code>%s</code>" % _e(r)
                for r in t["requirements"])
            out.append("<tr class='t v-%s'><td>%s<br><span class='muted'>%s</span></td><td>%s</td><td>%s</td>"
                       "<td>%s</td><td>%.2f</td><td>%s</td></tr>" % (
                           _e(t["verdict"]), name, _e(t["module"]), reqcell, _e(t["level"]), _e(t["verdict"]),
                           t["duration"], _clip(t["reason"])))
        out.append("</table></section>")
    out.append("</main>")

    # Wire logs of failures and warnings, each collapsible.
    out.append("<h2>Failures and warnings: wire logs</h2>")
    for i, t in sorted(enumerate(tests), key=lambda x: (RANK.get(x[1]["verdict"], 9), x[0])):
        if t["verdict"] not in ("fail", "warn", "info"):
            continue
        out.append("<h3 id='t%d' class='v-%s'>%s <span class='muted'>(%s, %s)</span></h3>%s" % (
            i, _e(t["verdict"]), _clip(t["nodeid"]), _e(t["level"]), _e(t["verdict"]), _clip(t["reason"], 300, True)))
        lines = "".join("%8.3f %-6s %-4s %-10s %s\n" % (w["t"], w["conn"], w["dir"], w["kind"], w["text"])
                        for w in t["wire"])
        out.append("<details><summary>wire log (%d frames)</summary><pre>%s</pre></details>" % (
            len(t["wire"]), _e(lines)))
    out.append("</body></html>")
    return "".join(out)
