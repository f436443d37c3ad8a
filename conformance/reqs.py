"""Requirements of spec/*.md: ids, levels, and the traceability matrix.

A requirement is a list item that starts with `[XXX-nnn]` (ENV, MSG, CHN,
TST, CLI); its text runs to the next list item, heading or blank line. Its level
comes from the RFC 2119 keywords in that text, the strongest winning:
MUST, MUST NOT, REQUIRED, SHALL, SHALL NOT -> MUST; SHOULD, SHOULD NOT,
RECOMMENDED -> SHOULD; MAY, OPTIONAL -> MAY. An item with no keyword states
required behaviour in the indicative ("replies X", "is cancelled") and is
read as MUST (spec/testing.md, TST-040).

Client requirements (spec/client.md, `CLI`) are verified by the client
conformance kit (conformance/client/), not by this wire suite:
load_elsewhere() adds, for every CLI id a kit scenario names, an entry that
points at conformance/client/scenarios.py (spec/testing.md TST-067).
"""

import json
import os
import re

ID_RE = re.compile(r"^\s*[-*]\s+\[((?:ENV|MSG|CHN|TST|CLI|AUTH)-\d{3})\]\s*(.*)$")
CLIENT_PREFIX = "CLI-"
CLIENT_SCENARIOS = "conformance/client/scenarios.py"
START_RE = re.compile(r"^\s*([-*]\s+|#|\|)")
LEVELS = ("MUST", "SHOULD", "MAY")
_KW = [
    ("MUST", re.compile(r"\b(MUST( NOT)?|REQUIRED|SHALL( NOT)?)\b")),
    ("SHOULD", re.compile(r"\b(SHOULD( NOT)?|RECOMMENDED)\b")),
    ("MAY", re.compile(r"\b(MAY|OPTIONAL)\b")),
]


class Requirement:
    def __init__(self, rid, text, path, line):
        self.id, self.text, self.path, self.line = rid, text, path, line
        self.level, self.implicit = "MUST", True
        for lvl, rx in _KW:
            if rx.search(text):
                self.level, self.implicit = lvl, False
                break

    def to_json(self):
        return {"id": self.id, "level": self.level, "implicit": self.implicit,
                "file": os.path.basename(self.path), "line": self.line, "text": self.text}


def default_spec_dir():
    here = os.path.dirname(os.path.abspath(__file__))
    d = os.path.join(os.path.dirname(here), "spec")
    return d if os.path.isdir(d) else None


def parse_spec(spec_dir):
    """Returns {id: Requirement} for every spec/*.md file (sorted)."""
    reqs = {}
    if not spec_dir or not os.path.isdir(spec_dir):
        return reqs
    for name in sorted(os.listdir(spec_dir)):
        if not name.endswith(".md"):
            continue
        path = os.path.join(spec_dir, name)
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
        cur = None
        for i, ln in enumerate(lines, 1):
            m = ID_RE.match(ln)
            if m:
                if cur:
                    reqs.setdefault(cur[0], Requirement(cur[0], " ".join(cur[1]), path, cur[2]))
                cur = (m.group(1), [m.group(2).strip()], i)
                continue
            if cur is None:
                continue
            if not ln.strip() or START_RE.match(ln):
                reqs.setdefault(cur[0], Requirement(cur[0], " ".join(cur[1]), path, cur[2]))
                cur = None
                continue
            cur[1].append(ln.strip())
        if cur:
            reqs.setdefault(cur[0], Requirement(cur[0], " ".join(cur[1]), path, cur[2]))
    # A withdrawn requirement keeps its id but asks nothing (spec/README.md).
    return {k: r for k, r in reqs.items() if not re.search(r"\*withdrawn\*", r.text, re.I)}


def load_elsewhere(path, client_kit=True):
    """The explicit table of requirements verified outside this suite, plus
    (client_kit) the CLI ids that the client kit's scenarios name."""
    table = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            table = json.load(f).get("covered", {})
    if client_kit:
        for rid, names in client_kit_coverage().items():
            table.setdefault(rid, {"where": CLIENT_SCENARIOS,
                                   "why": "client conformance kit: " + ", ".join(names)})
    return table


def client_kit_coverage(scenarios_path=None):
    """{CLI id: [scenario names]} read from the client kit's scenario file
    without importing it (no websockets needed here): every
    `@scenario("CLI-nnn", ..., name=...)` decorator and the function it
    decorates."""
    here = os.path.dirname(os.path.abspath(__file__))
    p = scenarios_path or os.path.join(here, "client", "scenarios.py")
    if not os.path.isfile(p):
        return {}
    with open(p, encoding="utf-8") as f:
        text = f.read()
    out = {}
    rx = re.compile(r'@scenario\(([^)]*)\)\s*\n\s*async def (\w+)')
    for m in rx.finditer(text):
        args, fn = m.group(1), m.group(2)
        named = re.search(r'name=([^,)]+)', args)
        label = fn
        if named:
            label = re.sub(r'%\w', '*', named.group(1).strip().split('"')[1] if '"' in named.group(1) else fn)
        for rid in re.findall(r'"(%s\d{3})"' % CLIENT_PREFIX, args):
            out.setdefault(rid, []).append(label)
    return out


def check_elsewhere_entry(rid, entry, repo_root):
    """An entry is honest only when the file it names exists and mentions
    the id. Returns None or a problem string."""
    where = entry.get("where")
    if not where:
        return "%s: no 'where'" % rid
    p = os.path.join(repo_root, where)
    if not os.path.isfile(p):
        return "%s: %s does not exist" % (rid, where)
    with open(p, encoding="utf-8", errors="replace") as f:
        if rid not in f.read():
            return "%s: %s does not mention %s" % (rid, where, rid)
    return None


def matrix(reqs, tests_by_req, elsewhere):
    """Rows: (id, level, tests, elsewhere-where)."""
    rows = []
    for rid in sorted(reqs):
        r = reqs[rid]
        e = elsewhere.get(rid) or {}
        where = e.get("where")
        if where == CLIENT_SCENARIOS and e.get("why"):
            where = "%s (%s)" % (where, e["why"])
        rows.append((rid, r.level, sorted(tests_by_req.get(rid, [])), where))
    return rows


def summarize(rows):
    out = {lvl: {"total": 0, "tested": 0, "elsewhere": 0, "uncovered": 0} for lvl in LEVELS}
    for rid, lvl, tests, where in rows:
        s = out[lvl]
        s["total"] += 1
        if tests:
            s["tested"] += 1
        elif where:
            s["elsewhere"] += 1
        else:
            s["uncovered"] += 1
    return out


def format_matrix(rows):
    lines = []
    for rid, lvl, tests, where in rows:
        if tests:
            what = "%d test(s): %s" % (len(tests), ", ".join(tests[:4]) + (" ..." if len(tests) > 4 else ""))
        elif where:
            what = "covered elsewhere: %s" % where
        else:
            what = "NOT COVERED"
        lines.append("%-8s %-6s %s" % (rid, lvl, what))
    s = summarize(rows)
    lines.append("")
    for lvl in LEVELS:
        c = s[lvl]
        lines.append("%-6s total %3d  tested %3d  elsewhere %3d  uncovered %3d" % (
            lvl, c["total"], c["tested"], c["elsewhere"], c["uncovered"]))
    return "\n".join(lines)


def verdict(level, outcome, strict, not_requested=False):
    """The verdict of one test (spec/testing.md TST-012, TST-021): outcome
    is pytest's 'passed', 'failed' or 'skipped'. Returns one of pass, fail,
    warn, info, skip, not-requested."""
    if outcome == "passed":
        return "pass"
    if outcome == "failed":
        if level == "MAY":
            return "info"
        if level == "SHOULD" and not strict:
            return "warn"
        return "fail"
    if not_requested:
        return "not-requested"
    if level == "MUST" or level == "NONE" or (level == "SHOULD" and strict):
        return "fail"
    return "skip"


def defined_ids(path):
    """Every requirement id a spec file defines (`- [XXX-nnn]` items), in
    order, repeats kept: the one rule by which ids are read from the spec
    (parse_spec here, spec/vectors/check_requirements.py)."""
    with open(path, encoding="utf-8") as f:
        return [m.group(1) for m in map(ID_RE.match, f.read().split("\n")) if m]
