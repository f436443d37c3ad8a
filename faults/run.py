#!/usr/bin/python3
"""Matchwire fault suite runner (see faults/README.md).

  /usr/bin/python3 faults/run.py --suite short|long [--build DIR] [--only NAME[,NAME]] [--auth]

--auth (or MW_FAULTS_AUTH=1) runs every scenario with auth on (spec/auth.md):
every matchwire-server gets a generated HS256 secret file and a service
token file, the clients present a fresh player token at every handshake.
Without it, each suite still runs the scenarios it lists in `auth_extra`
once more with auth on (rows named `<scenario>/auth`).

Prints one table per run, a summary table, and last, alone on its line,
`faults: N passed, M failed`; exit status 1 when a run failed. Failing runs
keep their logs in the directory printed with them; passing runs delete
theirs. Every process started is killed on exit, Ctrl-C included.
"""

import argparse
import atexit
import os
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import auth  # noqa: E402
import edge  # noqa: E402
import harness  # noqa: E402
import scenarios  # noqa: E402

HEAD = ["scenario", "run", "acked", "delivered", "lost", "dup", "recovery s", "max CPU %", "max RSS MB", "verdict"]

SUITES = {
    # short: `make test` (target: under ~4 minutes on 2 shared cores)
    "short": dict(clients=100, rate=600, warmup=2.0, after=2.0, between=2.0, drain=15.0, quiet=3.0,
                  redis_runs=1, redis_kills=3, stalls=[5.0], worker_runs=1, worker_kills=1,
                  failpoint_runs=1, gateway_runs=1, gateway_kills=1,
                  slowloris_conns=1000, slowloris_hold=5.0, fragment_conns=2000,
                  # one more run with auth on (issue 12), about 20 s
                  auth_extra=["redis-kill9-always"], auth_stall=5.0),
    # long: `make faults` (target: under ~15 minutes)
    "long": dict(clients=120, rate=800, warmup=3.0, after=4.0, between=3.0, drain=20.0, quiet=4.0,
                 redis_runs=3, redis_kills=3, stalls=[5.0, 10.0, 10.0], worker_runs=3, worker_kills=2,
                 failpoint_runs=2, gateway_runs=3, gateway_kills=2,
                 slowloris_conns=1000, slowloris_hold=20.0, fragment_conns=4000,
                 # every load scenario once more with auth on (issue 12), about 3 min
                 auth_extra=["redis-kill9-always", "redis-kill9-everysec", "redis-sigstop", "worker-kill9",
                             "worker-failpoint", "gateway-sigterm"], auth_stall=10.0),
}

SCENARIOS = [
    ("redis-kill9-always", lambda c: scenarios.redis_kill9(c, "always")),
    ("redis-kill9-everysec", lambda c: scenarios.redis_kill9(c, "everysec")),
    ("redis-sigstop", scenarios.redis_sigstop),
    ("worker-kill9", scenarios.worker_kill9),
    ("worker-failpoint", scenarios.worker_failpoint),
    ("gateway-sigterm", scenarios.gateway_sigterm),
    ("pipelining", edge.pipelining),
    ("slowloris", edge.slowloris),
    ("fragments", edge.fragments),
]


class Ctx:
    def __init__(self, args):
        self.suite = args.suite
        self.params = dict(SUITES[args.suite])
        if args.clients:
            self.params["clients"] = args.clients
        if args.rate:
            self.params["rate"] = args.rate
        self.build = args.build
        self.server = os.path.abspath(os.path.join(args.build, "reference", "matchwire-server"))
        self.failpoint_server = os.path.abspath(os.path.join(args.build, "reference",
                                                             "matchwire-server-failpoints"))
        self.root = tempfile.mkdtemp(prefix="mw-faults.", dir="/tmp")
        self.clients = self.params["clients"]
        self.rate = self.params["rate"]
        self.warmup = self.params["warmup"]
        self.after = self.params["after"]
        self.between = self.params["between"]
        self.drain = self.params["drain"]
        self.quiet = self.params["quiet"]
        self.recovery_bound = args.recovery_bound
        self.worker_recovery_bound = args.worker_recovery_bound
        self.stall_reply_bound = args.stall_reply_bound
        self.rss_bound = args.rss_bound
        self.frag_bound = args.frag_bound
        self.patterns = edge.SHORT_PATTERNS if args.suite == "short" else list(edge.PATTERNS)
        # Credentials of this suite run, in a private dir under root (removed at the end).
        self.creds = auth.Auth(self.root)
        self.all_auth = args.auth   # --auth: every run with auth on

    def p(self, k):
        return self.params[k]

    def auth_for(self, want):
        """The auth.Auth a run uses (None: auth off): every run with --auth,
        otherwise the suite's extra auth-on runs (want=True)."""
        return self.creds if (self.all_auth or want) else None

    def auth_extra(self, scenario):
        """Whether the suite runs `scenario` once more with auth on (not with
        --auth, where every run is)."""
        return not self.all_auth and scenario in self.params["auth_extra"]


def table(rows):
    w = [max(len(str(r[i])) for r in [HEAD] + rows) for i in range(len(HEAD))]
    out = ["  ".join(str(h).ljust(w[i]) for i, h in enumerate(HEAD))]
    out.append("  ".join("-" * w[i] for i in range(len(HEAD))))
    for r in rows:
        out.append("  ".join(str(c).ljust(w[i]) for i, c in enumerate(r)))
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", choices=sorted(SUITES), default="short")
    ap.add_argument("--build", default=os.environ.get("BUILD", "build"))
    ap.add_argument("--only", default=os.environ.get("MW_FAULTS_ONLY", ""),
                    help="comma list of scenario names (see --list), or none (env MW_FAULTS_ONLY)")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--clients", type=int, default=0)
    ap.add_argument("--rate", type=float, default=0, help="enqueues per second, all clients together")
    ap.add_argument("--recovery-bound", type=float, default=10.0,
                    help="s from the end of a Redis fault / gateway SIGTERM to healthz 200 and the first assignment")
    ap.add_argument("--worker-recovery-bound", type=float, default=20.0,
                    help="s from a worker restart to the first assignment (includes the 10 s lease)")
    ap.add_argument("--stall-reply-bound", type=float, default=3.0,
                    help="s a request sent during a Redis stall may wait for its answer")
    ap.add_argument("--rss-bound", type=float, default=256.0, help="MB per server process under load")
    ap.add_argument("--frag-bound", type=float, default=80.0,
                    help="MB the fragment flood may add to RSS over the same number of idle WebSockets "
                         "(MSG-122: the reference's reassembly budget is 64 MiB; the flood holds 2,000-4,000 "
                         "x 60,000 bytes)")
    ap.add_argument("--auth", action="store_true", default=os.environ.get("MW_FAULTS_AUTH") == "1",
                    help="every run with auth on (spec/auth.md): an HS256 secret and a service token "
                         "generated in the run's tmp dir, a fresh player token per connection (env MW_FAULTS_AUTH=1)")
    ap.add_argument("--external", action="append", default=[], metavar="NAME=pass|fail|skip",
                    help="a verdict reached elsewhere (scripts/faults.sh: the conformance faults profile), "
                         "shown as one more row and counted")
    args = ap.parse_args()
    if args.list:
        for n, _ in SCENARIOS:
            print(n)
        return 0
    ctx = Ctx(args)
    atexit.register(ctx.creds.remove)   # the secrets never outlive the run, whatever happens
    if not os.access(ctx.server, os.X_OK):
        print("faults: no server at %s (build it first)" % ctx.server)
        print("faults: 0 passed, 1 failed")
        return 1

    def on_signal(sig, _frame):
        harness.cleanup()
        ctx.creds.remove()
        print("\nfaults: interrupted by signal %d; logs in %s" % (sig, ctx.root))
        os._exit(130)
    atexit.register(harness.cleanup)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    only = [s for s in args.only.split(",") if s]
    known = [n for n, _ in SCENARIOS] + ["none"]
    for s in only:
        if s not in known:
            print("faults: unknown scenario %r (known: %s)" % (s, ", ".join(known)))
            return 2
    print("faults: suite %s, server %s, %d clients at %.0f enqueues/s, auth %s, tmp %s"
          % (ctx.suite, ctx.server, ctx.clients, ctx.rate,
             "on (every run)" if ctx.all_auth else "off (on in the extra runs of %s)"
             % ", ".join(ctx.params["auth_extra"]), ctx.root), flush=True)
    t_all = time.monotonic()
    results = []
    for name, fn in SCENARIOS:
        if only and name not in only:
            continue
        t0 = time.monotonic()
        rs = fn(ctx)
        print("\n== %s (%.0f s)" % (name, time.monotonic() - t0))
        print(table([r.row() for r in rs]))
        for r in rs:
            for i in r.info:
                print("   %s #%s: %s" % (r.scenario, r.run, i))
            for n in r.notes:
                print("   %s #%s FAIL: %s" % (r.scenario, r.run, n))
            if r.logdir:
                print("   %s #%s logs kept: %s" % (r.scenario, r.run, r.logdir))
        sys.stdout.flush()
        results += rs
        harness.cleanup()
    for e in args.external:
        name, _, verdict = e.partition("=")
        if verdict == "skip":
            continue
        r = scenarios.Result(name, 1)
        if verdict != "pass":
            r.fail("%s: %s (see its own output above)" % (name, verdict))
        results.append(r)
    passed = sum(1 for r in results if r.verdict == "pass")
    failed = len(results) - passed
    ctx.creds.remove()
    print("\n== summary (%.0f s)" % (time.monotonic() - t_all))
    print(table([r.row() for r in results]))
    if failed and os.listdir(ctx.root):
        print("logs of failing runs: %s" % ctx.root)
    else:
        shutil.rmtree(ctx.root, ignore_errors=True)
    print("faults: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
