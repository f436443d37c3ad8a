#!/usr/bin/python3
"""make mutation: mutation analysis of reference/src against the conformance
suite (issue 17). No packaged tool fits (Debian 12 has no mull and no other
C mutation tester: `apt-cache search mutation`), so this small driver does it:

1. coverage: builds the reference with clang source-based coverage in a
   scratch copy of the tree, runs the suite (core) against it, and keeps the
   lines of reference/src/*.c the suite executed (llvm-profdata, llvm-cov
   export);
2. mutants: on those lines only, one change per mutant, by five operators:
   `rel` relational boundary (< <=, > >=), `neg` negated condition (== !=,
   if (c) -> if (!(c))), `arith` arithmetic (+ -, - +, * /), `const` integer
   constant (N -> N+1, 1 -> 0, 0 -> 1), `del` deleted statement (a call or
   assignment statement -> `;`);
3. run: samples mutants (seeded), and for each, within the time budget:
   applies it in the scratch tree, rebuilds matchwire-server (a mutant that
   does not compile is `invalid`, not counted), starts two servers with the
   short test settings (scripts/conformance.sh), runs the suite with -x
   (stops at the first failure), and records `killed` (the suite failed),
   `survived` (it passed) or `timeout` (counted as killed);
4. report: score = killed / (killed + survived), and the survivors with
   file:line, operator and the changed line, in --out (JSON) and on stdout,
   for triage in conformance/MUTATION.md.

  conformance/mutation/mutate.py [--budget SECONDS (3300)] [--sample N (all)]
      [--seed N] [--profile core] [--ops rel,neg,arith,const,del]
      [--work DIR (/tmp/mw-mutation)] [--out FILE] [--keep-coverage] [--head]

The scratch tree is a copy (git ls-files) of this checkout, or with --head of
the committed tree (git archive HEAD): the working tree is never modified.
The tree measured (HEAD, and the uncommitted reference/ changes copied with
it, their diff kept as WORK/tree.diff) is in the results. The suite runs
from the same copy (its conformance/), so edits made to the checkout during
the run change neither the server nor the suite measured.

A killed mutant records the test that killed it (the first failure); that
test is then run alone against the unmutated server, and a mutant whose
killing test fails there too is counted `flaky` (neither killed nor
survived: the failure may be timing under load, not the mutant). Needs clang, llvm (llvm-profdata, llvm-cov), cmake.
"""

import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
PY = "/usr/bin/python3"
SHORT = ["--queue-size", "conf3=3", "--ticket-ttl", "5", "--grace", "1", "--assigned-ttl", "3",
         "--idle-timeout", "2", "--max-connections", "60", "--rate", "1000", "--rate-burst", "2000",
         "--outbound-max-messages", "64", "--log-level", "0"]
# The suite's own checks catch nothing about the server.
NOT_SERVER = "not test_traceability and not test_report_html and not test_resp_proxy and not test_suite_self"


def sh(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def tool(*names):
    for n in names:
        if shutil.which(n):
            return n
    sys.exit("mutation: none of %s found (apt-get install llvm clang)" % ", ".join(names))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def tree_state(from_head=False):
    """What the run measures: HEAD plus the uncommitted changes to reference/
    at the moment the tree is copied (others edit it during a session), or
    HEAD alone with --head."""
    head = sh(["git", "rev-parse", "HEAD"], cwd=ROOT).stdout.strip()
    if from_head:
        return {"head": head, "reference_dirty": [], "reference_diff_sha256": None, "diff": "",
                "describe": "HEAD %s (committed tree, --head)" % head[:12]}
    diff = sh(["git", "diff", "HEAD", "--", "reference"], cwd=ROOT).stdout
    dirty = sorted(ln[3:] for ln in sh(["git", "status", "--porcelain", "--", "reference"], cwd=ROOT
                                        ).stdout.split("\n") if ln.strip())
    import hashlib
    digest = hashlib.sha256(diff.encode()).hexdigest()[:12]
    return {"head": head, "reference_dirty": dirty, "reference_diff_sha256": digest, "diff": diff,
            "describe": "HEAD %s%s" % (head[:12], " + uncommitted reference/ changes (%s; diff sha256 %s, saved "
                                       "as WORK/tree.diff)" % (", ".join(dirty), digest) if dirty else
                                       ", reference/ clean")}


def copy_tree(work, head=False):
    tree = os.path.join(work, "tree")
    if os.path.exists(tree):
        shutil.rmtree(tree)
    if head:
        # The committed tree only: reproducible while others edit the checkout.
        os.makedirs(tree)
        arch = subprocess.Popen(["git", "archive", "HEAD"], cwd=ROOT, stdout=subprocess.PIPE)
        # -m: files dated now, never older than a previous run's objects.
        subprocess.run(["tar", "-x", "-m", "-C", tree], stdin=arch.stdout, check=True)
        if arch.wait():
            sys.exit("mutation: git archive HEAD failed")
        return tree
    files = sh(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True).stdout.split("\n")
    for f in files:
        if not f or f.startswith("build") or not os.path.isfile(os.path.join(ROOT, f)):
            continue
        dst = os.path.join(tree, f)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(os.path.join(ROOT, f), dst)
    return tree


def configure(tree, build, cflags=""):
    r = sh(["cmake", "-S", tree, "-B", build, "-DCMAKE_BUILD_TYPE=Release", "-DMW_WERROR=OFF",
            "-DCMAKE_C_COMPILER=clang", "-DCMAKE_C_FLAGS=%s" % cflags])
    if r.returncode:
        sys.exit("mutation: cmake failed:\n" + r.stdout[-3000:])


def build_server(build, timeout=600):
    return sh(["cmake", "--build", build, "-j", "2", "--target", "matchwire-server"], timeout=timeout)


def wait_port(port, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


# The suite that runs: the checkout's conformance/ until the scratch tree is
# copied, then the copy's, so that edits to the suite during a run (others
# work in the checkout) do not change what the run measures.
SUITE = {"root": ROOT}


def first_failure(out):
    """The id of the first failing test in pytest's -rfE summary (FAILED or
    ERROR line; the id may contain spaces inside its [parameters])."""
    m = re.search(r"^(?:FAILED|ERROR) (\S+?(?:\[.*?\])?)(?: - .*)?$", out, re.M)
    return m.group(1) if m else None


def run_suite(server, profile, timeout, env=None, extra=(), only=None):
    """Starts two servers, runs the suite; returns (rc, seconds, last line)."""
    p1, p2 = free_port(), free_port()
    procs = [subprocess.Popen([server, "--listen", "127.0.0.1:%d" % p, *SHORT], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env=env) for p in (p1, p2)]
    t0 = time.monotonic()
    try:
        if not (wait_port(p1) and wait_port(p2)):
            return 1, time.monotonic() - t0, "server did not start"
        suite = SUITE["root"]
        decl = os.path.join(suite, "conformance", "mutation", "testee.json")
        # `only`: one test id (as first_failure gives it), run alone through
        # pytest (conformance/run always collects the whole directory).
        head = [PY, os.path.join(suite, "conformance", "run")] if only is None else [
            PY, "-m", "pytest", os.path.join(suite, only) if only.startswith("conformance/") else
            os.path.join(suite, "conformance", only), "-p", "no:cacheprovider", "--rootdir",
            os.path.join(suite, "conformance"), "-q", "-rfE"]
        cmd = head + ["--url", "ws://127.0.0.1:%d/realtime" % p1,
               "--profile", profile, "--testee-config", decl, "--shutdown-url", "ws://127.0.0.1:%d/realtime" % p2,
               "--shutdown-cmd", "kill -TERM %d" % procs[1].pid, "-x"]
        if only is None:
            cmd += ["-k", NOT_SERVER]
        cmd += list(extra)
        try:
            r = sh(cmd, timeout=timeout, cwd=suite)   # test ids come out as conformance/test_...
        except subprocess.TimeoutExpired:
            return "timeout", time.monotonic() - t0, "suite timed out"
        last = [ln for ln in r.stdout.strip().split("\n") if ln.strip()][-1:] or [""]
        first = first_failure(r.stdout)
        return r.returncode, time.monotonic() - t0, (first if first else last[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


# ---------------------------------------------------------------------------
# 1. Coverage
# ---------------------------------------------------------------------------

def coverage(work, tree, profile):
    build = os.path.join(work, "build-cov")
    configure(tree, build, "-fprofile-instr-generate -fcoverage-mapping")
    r = build_server(build, 1800)
    if r.returncode:
        sys.exit("mutation: coverage build failed:\n" + r.stdout[-3000:])
    server = os.path.join(build, "reference", "matchwire-server")
    prof = os.path.join(work, "prof")
    shutil.rmtree(prof, ignore_errors=True)
    os.makedirs(prof)
    env = dict(os.environ, LLVM_PROFILE_FILE=os.path.join(prof, "%p.profraw"))
    rc, secs, last = run_suite(server, profile, 900, env)
    print("mutation: coverage run of the suite: rc=%s %.0fs %s" % (rc, secs, last), flush=True)
    raws = [os.path.join(prof, f) for f in os.listdir(prof)]
    data = os.path.join(work, "cov.profdata")
    sh([tool("llvm-profdata", "llvm-profdata-14"), "merge", "-sparse", "-o", data] + raws, check=True)
    srcs = sorted(os.path.join(tree, "reference", "src", f) for f in os.listdir(os.path.join(tree, "reference", "src"))
                  if f.endswith(".c"))
    out = sh([tool("llvm-cov", "llvm-cov-14"), "show", server, "-instr-profile=" + data, "-use-color=false",
              "-show-expansions=false", "-show-line-counts"] + srcs, check=True).stdout
    covered, cur = {}, None
    for ln in out.split("\n"):
        if ln.startswith("/") and ln.rstrip().endswith(".c:"):
            name = ln.rstrip()[:-1]
            cur = covered.setdefault("reference/src/" + os.path.basename(name), [])
            continue
        m = re.match(r"^\s*(\d+)\|\s*([0-9.]+[kMG]?)\|", ln)
        if cur is not None and m and m.group(2) not in ("0",):
            cur.append(int(m.group(1)))
    return covered


# ---------------------------------------------------------------------------
# 2. Mutants
# ---------------------------------------------------------------------------

DECL_RE = re.compile(r"^\s*(static\s+|const\s+|struct\s+\w+\s*\*?\s*\w+\s*[=;]|(unsigned|signed|int|char|bool|"
                     r"size_t|ssize_t|double|float|long|short|u?int\d+_t|void)\b)")


def strip_strings(line):
    """The line with string and char literals blanked (same length)."""
    return re.sub(r'"(\\.|[^"\\])*"|\'(\\.|[^\'\\])*\'', lambda m: " " * len(m.group(0)), line)


def mutants_of_line(text, ops):
    code = strip_strings(text)
    if "//" in code:
        code = code[:code.index("//")] + " " * (len(code) - code.index("//"))
    s = code.strip()
    if not s or s.startswith(("#", "/*", "*", "//")) or "MW_ASSERT" in code or "mw_log" in code:
        return []
    out = []

    def at(op, i, j, repl):
        out.append((op, text[:i] + repl + text[j:]))
    if "rel" in ops:
        for m in re.finditer(r"(?<![<>=!-])(<=|>=|<|>)(?![<>=])", code):
            if m.group(1) in ("<", ">") and ("#include" in code or "->" in code[m.start() - 1:m.end() + 1]):
                continue
            repl = {"<": "<=", "<=": "<", ">": ">=", ">=": ">"}[m.group(1)]
            at("rel", m.start(), m.end(), repl)
    if "neg" in ops:
        for m in re.finditer(r"(==|!=)", code):
            at("neg", m.start(), m.end(), "!=" if m.group(1) == "==" else "==")
        m = re.search(r"\bif \((.*)\)\s*(\{|return|goto|break|continue|$)", code)
        if m and code.count("(", m.start(1), m.end(1)) == code.count(")", m.start(1), m.end(1)):
            at("neg", m.start(1), m.end(1), "!(" + text[m.start(1):m.end(1)] + ")")
    if "arith" in ops:
        for m in re.finditer(r"(?<=[\w)\]]) ([+\-*]) (?=[\w(])", code):
            repl = {"+": "-", "-": "+", "*": "/"}[m.group(1)]
            at("arith", m.start(1), m.end(1), repl)
    if "const" in ops:
        for m in re.finditer(r"(?<![\w.])(\d+)(?![\w.])", code):
            n = int(m.group(1))
            repl = "1" if n == 0 else ("0" if n == 1 else str(n + 1))
            at("const", m.start(), m.end(), repl)
    if "del" in ops and s.endswith(";") and not s.startswith(("if", "return", "case", "default", "break", "continue",
                                                              "goto", "}", "else", "for", "while", "do")) \
            and not DECL_RE.match(code) and s.count("(") == s.count(")") and "{" not in s \
            and not re.match(r"^\(void\)\s*\w+;$", s):   # `(void)x;` does nothing: always equivalent
        lead = len(text) - len(text.lstrip())
        out.append(("del", text[:lead] + ";" + " /* deleted: mutation */\n"))
    return out


def all_mutants(tree, covered, ops):
    muts = []
    for rel, lines in sorted(covered.items()):
        with open(os.path.join(tree, rel), encoding="utf-8") as f:
            src = f.readlines()
        in_comment = False
        lineset = set(lines)
        for no in range(1, len(src) + 1):
            t = src[no - 1]
            if in_comment:
                if "*/" in t:
                    in_comment = False
                continue
            if t.lstrip().startswith("/*") and "*/" not in t:
                in_comment = True
                continue
            if no not in lineset:
                continue
            for op, new in mutants_of_line(t, ops):
                if new != t:
                    muts.append({"file": rel, "line": no, "op": op, "orig": t.rstrip("\n"),
                                 "mutant": new.rstrip("\n")})
    return muts


# ---------------------------------------------------------------------------
# 3. Run
# ---------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget", type=float, default=3300, help="seconds for the mutant runs (default 3300)")
    ap.add_argument("--sample", type=int, default=0, help="at most N mutants (0: as many as the budget allows)")
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--profile", default="core")
    ap.add_argument("--ops", default="rel,neg,arith,const,del")
    ap.add_argument("--work", default="/tmp/mw-mutation")
    ap.add_argument("--out", default=None, help="results JSON (default WORK/results.json)")
    ap.add_argument("--keep-coverage", action="store_true", help="reuse WORK/covered.json if present")
    ap.add_argument("--suite-timeout", type=float, default=300)
    ap.add_argument("--head", action="store_true",
                    help="mutate the committed tree (git archive HEAD), not the working tree")
    a = ap.parse_args()
    ops = set(a.ops.split(","))
    os.makedirs(a.work, exist_ok=True)
    out = a.out or os.path.join(a.work, "results.json")
    t_start = time.monotonic()
    state = tree_state(a.head)
    print("mutation: measuring %s" % state["describe"], flush=True)
    tree = copy_tree(a.work, a.head)
    SUITE["root"] = tree
    with open(os.path.join(a.work, "tree.diff"), "w") as f:
        f.write(state.pop("diff"))
    cov_file = os.path.join(a.work, "covered.json")
    if a.keep_coverage and os.path.exists(cov_file):
        covered = json.load(open(cov_file))
    else:
        covered = coverage(a.work, tree, a.profile)
        json.dump(covered, open(cov_file, "w"))
    n_lines = sum(len(v) for v in covered.values())
    muts = all_mutants(tree, covered, ops)
    random.Random(a.seed).shuffle(muts)
    print("mutation: %d lines of reference/src executed by the suite, %d mutants (%s); seed %d" % (
        n_lines, len(muts), ",".join(sorted(ops)), a.seed), flush=True)
    build = os.path.join(a.work, "build")
    # A fresh build: objects of an earlier run's tree (other sources, newer
    # dates) would otherwise be linked with this one's.
    shutil.rmtree(build, ignore_errors=True)
    configure(tree, build)
    r = build_server(build, 1800)
    if r.returncode:
        sys.exit("mutation: baseline build failed:\n" + r.stdout[-3000:])
    server = os.path.join(build, "reference", "matchwire-server")
    rc, secs, last = run_suite(server, a.profile, a.suite_timeout)
    if rc != 0:
        sys.exit("mutation: the suite fails on the unmutated server (%s): fix that first" % last)
    print("mutation: baseline suite passes in %.0fs" % secs, flush=True)
    # The unmutated binary, kept to re-run a killed mutant's failing test on:
    # a test that also fails there failed by timing (load), not by the mutant.
    base_server = os.path.join(a.work, "matchwire-server.unmutated")
    shutil.copy2(server, base_server)
    budget_end = time.monotonic() + a.budget
    results = []
    for m in muts:
        if a.sample and len([x for x in results if x["status"] != "invalid"]) >= a.sample:
            break
        if time.monotonic() + secs * 1.5 > budget_end:
            print("mutation: time budget reached", flush=True)
            break
        path = os.path.join(tree, m["file"])
        src = open(path, encoding="utf-8").readlines()
        orig = src[m["line"] - 1]
        src[m["line"] - 1] = m["mutant"] + "\n"
        open(path, "w", encoding="utf-8").writelines(src)
        try:
            b = build_server(build)
            if b.returncode:
                status, detail, took = "invalid", "does not compile", 0.0
            else:
                rc, took, detail = run_suite(server, a.profile, a.suite_timeout)
                status = "timeout" if rc == "timeout" else ("killed" if rc != 0 else "survived")
        finally:
            src[m["line"] - 1] = orig
            open(path, "w", encoding="utf-8").writelines(src)
        m = dict(m, status=status, detail=detail, seconds=round(took, 1))
        if status == "killed":
            # Which test killed it, and whether that test passes alone on the
            # unmutated server (if not, the kill may be a timing flake: the
            # mutant is counted `flaky`, neither killed nor survived).
            test_id = detail if "::" in detail else None
            m["killed_by"] = test_id
            if test_id:
                rrc, rtook, rdetail = run_suite(base_server, a.profile, a.suite_timeout, only=test_id)
                m["recheck"] = "passes unmutated" if rrc == 0 else "fails unmutated: %s" % rdetail
                if rrc != 0:
                    status = m["status"] = "flaky"
            else:
                m["recheck"] = "no test id (the suite failed outside a test): kept as killed"
        results.append(m)
        json.dump({"partial": True, "tree": state, "results": results}, open(out, "w"), indent=1)
        print("%-8s %s:%d %-5s %s" % (status, m["file"], m["line"], m["op"],
                                      detail if status != "survived" else m["mutant"].strip()), flush=True)
    build_server(build)  # leave the scratch build unmutated
    killed = sum(1 for r in results if r["status"] in ("killed", "timeout"))
    survived = [r for r in results if r["status"] == "survived"]
    flaky = sum(1 for r in results if r["status"] == "flaky")
    counted = killed + len(survived)
    invalid = sum(1 for r in results if r["status"] == "invalid")
    score = killed / counted if counted else 0.0
    summary = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "command": " ".join(sys.argv),
               "seed": a.seed, "profile": a.profile, "ops": sorted(ops), "lines_executed": n_lines,
               "tree": state, "mutants_total": len(muts), "tried": len(results), "invalid": invalid,
               "killed": killed, "survived": len(survived), "flaky": flaky, "score": round(score, 4),
               "killed_by": sorted({r.get("killed_by") or r["detail"] for r in results
                                    if r["status"] in ("killed", "timeout")}),
               "seconds": round(time.monotonic() - t_start), "results": results}
    json.dump(summary, open(out, "w"), indent=1)
    print("mutation score: %d/%d = %.1f%% (%d invalid, %d flaky, %d mutants available; %s)" % (
        killed, counted, 100 * score, invalid, flaky, len(muts), out))
    for r in survived:
        print("SURVIVED %s:%d %s: %s  ->  %s" % (r["file"], r["line"], r["op"], r["orig"].strip(),
                                                r["mutant"].strip()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
