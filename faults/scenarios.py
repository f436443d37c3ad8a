"""Load scenarios of the fault suite: one Redis (appendonly yes), two api
gateways and one worker (all `--channel redis`), N clients (load.py), and a
fault under load. Each scenario function returns one Result per run.

Per run it asserts (the verdict is `fail` with a reason for each that does
not hold):
  lost 0        every acknowledged ticket ends with its client holding its
                match.assigned, or an end notice (ticket.cancelled/expired);
                after the drain, an acknowledged ticket still queued is
                allowed only as the odd one out (at most 1), one assigned in
                Redis but never delivered, missing, or forgotten is lost;
  dup 0         no match.assigned (same ticket, same version) twice on one
                connection, no ticket with two different matchIds, no
                player (= ticket) in two matches;
  no phantom    no player in a match whose client never got `enqueued`, and
                once every client has disconnected, every ticket of the run
                left in mw:queue is cancelled by grace within grace + slack;
  not stuck     after the drain every process's CPU over 1 s < 50 %, its
                /healthz answers 200 within 1 s, no terminal close code
                (1002/1003/1007/1008/1009/1010) was sent to a client, and
                SIGTERM at the end is honoured within 3 s;
  recovery      from the end of each fault to /healthz 200 on every process
                and to the first match.assigned: within the stated bound;
  RSS           every matchwire-server's VmRSS stays under the bound.

Auth on (a run given an auth.Auth: `run.py --auth`, or the suites' extra
`/auth` runs): every server gets the HS256 secret and service token files,
each client is one player with a token per connection (load.py), and no
handshake may be refused 401. The checks are the same, with "no player in
two matches" read per ticket (load.Load.conflicts).
"""

import os
import signal
import time
import uuid

from harness import Proc, Redis, RunDir, Sampler, cpu_percent, free_port, handshake_status, server_argv
from load import Load

GRACE = 1.0
UNANSWERED_AGE = 0.02   # a request sent this long before a SIGTERM was read by the server
PHANTOM_SLACK = 4.0


class Result:
    def __init__(self, scenario, run):
        self.scenario, self.run = scenario, run
        self.acked = self.delivered = self.lost = self.dup = None
        self.recovery = None
        self.max_cpu = 0.0
        self.max_rss = 0.0
        self.notes = []     # failure reasons
        self.info = []      # figures worth printing
        self.logdir = None

    def fail(self, why):
        self.notes.append(why)

    @property
    def verdict(self):
        return "pass" if not self.notes else "FAIL"

    def row(self):
        def f(v, fmt="%s"):
            return "-" if v is None else fmt % v
        return [self.scenario, str(self.run), f(self.acked), f(self.delivered), f(self.lost), f(self.dup),
                f(self.recovery, "%.2f"), "%.0f" % self.max_cpu, "%.1f" % self.max_rss, self.verdict]


class Deployment:
    """redis + api x2 + worker, each with its own log in the run dir."""

    def __init__(self, ctx, rd, appendfsync="always", worker_binary=None, worker_env=None, auth=None):
        self.ctx, self.rd, self.auth = ctx, rd, auth
        self.sampler = Sampler()
        self.redis = Redis(rd.path, appendfsync)
        url = self.redis.url()
        self.gateways = []
        for i in (1, 2):
            port = free_port()
            self.gateways.append(Proc("api%d" % i, server_argv(ctx.server, port, "api", "redis", url, auth=auth),
                                      rd.file("api%d.log" % i), port))
        self.worker_port = free_port()
        self.worker = Proc("worker", server_argv(worker_binary or ctx.server, self.worker_port, "worker",
                                                 "redis", url, auth=auth), rd.file("worker.log"),
                           self.worker_port, env=worker_env)
        for p in self.servers():
            self.sampler.watch(p)
        self.sampler.start()

    def servers(self):
        return self.gateways + [self.worker]

    def urls(self):
        return ["ws://127.0.0.1:%d/realtime" % g.port for g in self.gateways]

    def replace_worker(self, binary=None, env=None):
        if self.worker.alive():
            self.worker.kill9()
        self.worker = Proc("worker", server_argv(binary or self.ctx.server, self.worker_port, "worker",
                                                 "redis", self.redis.url(), auth=self.auth),
                           self.rd.file("worker.log"), self.worker_port, env=env)
        self.sampler.watch(self.worker)

    def wait_all_healthy(self, timeout):
        """Seconds until every server answers /healthz 200, or None."""
        t0 = time.monotonic()
        for p in self.servers():
            left = timeout - (time.monotonic() - t0)
            if left <= 0 or p.wait_healthy(left) is None:
                return None
        return time.monotonic() - t0

    def max_cpu(self):
        return max([p.max_cpu for p in self.servers()] + [0.0])

    def max_rss(self):
        return max([p.max_rss for p in self.servers()] + [0.0])

    def shutdown(self, res):
        """SIGTERM honoured within 3 s by every server (then Redis)."""
        for p in self.servers():
            if p.alive():
                s = p.sigterm(3.0)
                if s is None:
                    res.fail("%s ignored SIGTERM for 3 s (killed)" % p.name)
        self.redis.kill9()
        self.sampler.stop()

    def kill_all(self):
        for p in self.servers() + [self.redis]:
            if p.alive():
                p.kill9()
        self.sampler.stop()


def check_idle(dep, res):
    """No process stuck: CPU over 1 s < 50 % and /healthz 200 within 1 s.
    After a Redis kill this is CHN-106: a worker whose commits failed must
    back off, not form the same match again in a loop."""
    for p in dep.servers():
        if not p.alive():
            res.fail("%s is not running (exit %s)" % (p.name, p.popen.returncode))
            continue
        c = cpu_percent(p.pid, 1.0)
        if c is not None and c >= 50:
            res.fail("%s spins: %.0f%% CPU over 1 s after the load" % (p.name, c))
        st, body, s = p.healthz(1.0)
        if st != 200:
            res.fail("%s /healthz after the fault: %s %s" % (p.name, st, body[:80]))


def check_auth_on(dep, auth, res):
    """Auth really on: on each gateway a handshake without a token is
    refused 401 (AUTH-040) and one with a fresh token upgraded (101)."""
    for g in dep.gateways:
        st = handshake_status(g.port, None, 1.0)
        if st != 401:
            res.fail("auth on, yet %s answered a handshake without a token with %s (want 401)" % (g.name, st))
        st = handshake_status(g.port, auth.token("auth-check-%s" % g.name), 1.0)
        if st != 101:
            res.fail("auth on, yet %s answered a handshake with a valid token with %s (want 101)" % (g.name, st))


def classify(dep, load, res):
    """Lost, delivered, duplicated; via the clients' records and Redis."""
    r = dep.redis.client()
    acked = list(load.acked_list)
    res.acked = len(acked)
    res.delivered = sum(1 for t in acked if t.final == "assigned")
    ended = sum(1 for t in acked if t.final in ("cancelled", "expired"))
    lost = []
    queued = []
    for t in acked:
        if t.final in ("assigned", "cancelled", "expired"):
            continue
        if t.final == "not_found":
            lost.append((t, "forgotten (watch: not_found)"))
            continue
        h = r.hgetall("mw:ticket:" + t.id)
        st = h.get("state")
        if st == "queued":
            queued.append(t)
        elif st is None:
            lost.append((t, "missing in Redis"))
        else:
            lost.append((t, "%s in Redis (v%s), never delivered to its client" % (st, h.get("version"))))
    if len(queued) > 1:
        lost += [(t, "still queued after the drain") for t in queued]
    res.lost = len(lost)
    if lost:
        why = {}
        for _t, w in lost:
            why[w] = why.get(w, 0) + 1
        res.fail("lost %d acknowledged: %s" % (len(lost), ", ".join("%d %s" % (n, w) for w, n in why.items())))
        load.log("LOST " + " ".join("%s:%s" % (t.id, w) for t, w in lost[:200]))
    two, multi = load.conflicts()
    res.dup = len(load.dup_same_conn) + len(two) + len(multi)
    if load.dup_same_conn:
        res.fail("%d match.assigned repeated on one connection (e.g. %s)" % (len(load.dup_same_conn),
                                                                           load.dup_same_conn[0]))
    if two:
        res.fail("%d tickets with two different assignments (e.g. %s)" % (len(two), two[0]))
    if multi and load.auth is None:
        res.fail("%d players in two matches (e.g. %s)" % (len(multi), multi[0]))
    elif multi:
        res.fail("%d players named in more matches that never reached their client than they have "
                 "undelivered tickets: a ticket in two matches or a phantom (e.g. %s)" % (len(multi), multi[0]))
    acked_players = {t.player for t in acked}
    ghosts = [p for p in load.player_matches if p.startswith(load.tag + "-") and p not in acked_players]
    if ghosts:
        res.fail("%d phantom tickets matched: players whose client never got `enqueued` (e.g. %s)"
                 % (len(ghosts), ghosts[0]))
    if load.terminal_closes:
        codes = sorted({c for _, _, c in load.terminal_closes})
        res.fail("%d connections closed with terminal codes %s" % (len(load.terminal_closes), codes))
    if load.unanswered_1001:
        ages = sorted(u[2] for u in load.unanswered_1001)
        res.info.append("requests unanswered at a 1001 close: %d, ages %s s" % (len(ages), ages[:10]))
        # A request the gateway had before its shutdown began (sent at least
        # UNANSWERED_AGE before the SIGTERM) must be answered before its 1001
        # (MSG-123); one that arrived during the drain may be ignored.
        old = []
        for u in load.unanswered_1001:
            sig = [t for t in load.sigterms if t <= u[4]]
            if sig and sig[-1] - u[3] >= UNANSWERED_AGE:
                old.append(u)
        if old:
            res.fail("%d requests sent %.0f ms or more before their gateway's SIGTERM got no reply before its "
                     "1001 close (e.g. conn %s %s, %.3f s old)" % ((len(old), UNANSWERED_AGE * 1000) + old[0][:3]))
    if load.unauthorized:
        res.fail("%d WebSocket handshakes refused 401 with a fresh token" % load.unauthorized)
    if load.bad_replies:
        res.fail("%d unexpected replies (e.g. %s)" % (len(load.bad_replies), str(load.bad_replies[0])[:160]))
    res.info.append("ended %d, leftover queued %d, retries %s, reconnects %d, reply timeouts %d, closes %s%s"
                    % (ended, len(queued), dict(load.retries), load.connects - load.nclients,
                       load.reply_timeouts, dict(load.closes),
                       ", auth on: %d tokens minted" % load.tokens if load.auth is not None else ""))
    r.close()


def phantom_check(dep, load, res):
    """Every client is gone now: every ticket of this run still in mw:queue
    must be cancelled by grace within grace + slack (channel.md §5.4)."""
    r = dep.redis.client()
    deadline = time.monotonic() + GRACE + PHANTOM_SLACK
    left = []
    while True:
        left = []
        for tid in r.zrange("mw:queue", 0, -1):
            if r.hget("mw:ticket:" + tid, "queue") == load.queue:
                left.append(tid)
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    if left:
        ws = [r.hget("mw:ticket:" + t, "watchers") for t in left[:5]]
        res.fail("%d tickets still queued %.0f s after every client left, not cancelled by grace (phantoms; watchers %s)"
                 % (len(left), GRACE + PHANTOM_SLACK, ws))
    r.close()


def load_run(ctx, name, run_no, fault, appendfsync="always", worker_binary=None, worker_env=None,
             recovery_bound=10.0, rss_bound=None, warmup_check=True, auth=False):
    """auth: True for auth on in this run (always on with run.py --auth)."""
    auth = ctx.auth_for(auth)
    if auth is not None:
        name += "/auth"
    res = Result(name, run_no)
    rd = RunDir(ctx.root, "%s-%d" % (name.replace("/", "-"), run_no))
    dep = load = None
    rss_bound = rss_bound or ctx.rss_bound
    try:
        dep = Deployment(ctx, rd, appendfsync, worker_binary, worker_env, auth=auth)
        if dep.wait_all_healthy(15) is None and warmup_check:
            res.fail("deployment not healthy within 15 s")
            return res
        if auth is not None:
            check_auth_on(dep, auth, res)
        queue = "fq" + uuid.uuid4().hex[:10]
        load = Load(dep.urls(), ctx.clients, ctx.rate, queue, queue, rd.file("events.log"), auth=auth)
        load.start()
        time.sleep(ctx.warmup)
        if warmup_check and not load.assign_times:
            res.fail("no assignment in the first %.0f s (before any fault)" % ctx.warmup)
        recs = fault(ctx, dep, load, res)
        if recs:   # the load goes on until the system works again (bounded)
            wait_assign(load, recs[-1]["end"], recovery_bound)
        time.sleep(ctx.after)
        load.stop_enqueue()
        load.drain(ctx.drain, quiet=ctx.quiet)
        check_idle(dep, res)
        classify(dep, load, res)
        worst = 0.0
        for rec in recs:
            hz = rec.get("healthz")
            first = load.first_assign_after(rec["end"])
            if hz is None:
                res.fail("%s: /healthz not 200 on every process within %.0f s" % (rec["what"], recovery_bound))
                worst = None
            if first is None:
                res.fail("%s: no match.assigned after the fault" % rec["what"])
                worst = None
            elif first > recovery_bound:
                res.fail("%s: first match.assigned %.1f s after the fault (bound %.0f s)"
                         % (rec["what"], first, recovery_bound))
            if worst is not None and hz is not None and first is not None:
                worst = max(worst, hz, first)
        res.recovery = worst if recs else None
        load.close()
        phantom_check(dep, load, res)
        if dep.redis.repairs:
            res.info.append("AOF repaired before %d of the restarts (redis-check-aof --fix): %s"
                            % (len(dep.redis.repairs), dep.redis.repairs[0]))
        damage = dep.redis.log_damage()
        if damage:
            res.fail("redis-server reported a damaged AOF (so Redis itself may have lost acknowledged "
                     "writes): %s" % damage[0][:200])
        res.max_cpu, res.max_rss = dep.max_cpu(), dep.max_rss()
        if res.max_rss > rss_bound:
            res.fail("RSS %.0f MB over the bound %.0f MB" % (res.max_rss, rss_bound))
        dep.shutdown(res)
    except Exception as e:  # noqa: BLE001 - a harness error fails the run, with its logs
        import traceback
        res.fail("harness error: %r" % e)
        with open(rd.file("harness-error.txt"), "w") as f:
            f.write(traceback.format_exc())
    finally:
        if load is not None and not load.closing:
            load.close()
        if dep is not None:
            res.max_cpu, res.max_rss = max(res.max_cpu, dep.max_cpu()), max(res.max_rss, dep.max_rss())
            dep.kill_all()
        finish(rd, res)
    return res


def finish(rd, res):
    if res.verdict == "pass" and os.environ.get("MW_FAULTS_KEEP") != "1":
        rd.remove()
    else:
        rd.write_json("result.json", {"scenario": res.scenario, "run": res.run, "notes": res.notes,
                                      "info": res.info, "row": res.row()})
        res.logdir = rd.path


def wait_assign(load, since, bound):
    t_end = time.monotonic() + bound
    while load.first_assign_after(since) is None and time.monotonic() < t_end:
        time.sleep(0.1)


# ---------------------------------------------------------------------------
# Faults (each returns a list of {"what", "end", "healthz"} records)
# ---------------------------------------------------------------------------

def fault_redis_kill9(kills, down):
    def f(ctx, dep, load, res):
        recs = []
        for k in range(kills):
            if k:
                wait_assign(load, recs[-1]["end"], ctx.worker_recovery_bound)
                time.sleep(ctx.between)
            dep.redis.kill9()
            t = time.monotonic()
            time.sleep(down)
            if not dep.redis.restart():
                res.fail("redis-server did not restart")
                return recs
            end = time.monotonic()
            load.log("FAULT redis kill -9 #%d at %.3f, restarted %.3f" % (k + 1, t, end))
            recs.append({"what": "redis kill -9 #%d" % (k + 1), "end": end,
                         "healthz": dep.wait_all_healthy(ctx.recovery_bound)})
        return recs
    return f


def fault_redis_sigstop(stall):
    """MSG-125 / CHN-104: a request waiting on the stalled Redis gets
    `unavailable` within the backend timeout; MSG-128 / CHN-107: /healthz
    answers at once and says 503 during the stall; MSG-127: no terminal
    close."""
    def f(ctx, dep, load, res):
        dep.redis.signal(signal.SIGSTOP)
        t0 = time.monotonic()
        load.log("FAULT redis SIGSTOP %.3f" % t0)
        try:
            time.sleep(min(2.5, stall / 2))
            for g in dep.gateways:
                st, body, s = g.healthz(1.0)
                if st is None:
                    res.fail("%s /healthz did not answer within 1 s during the stall" % g.name)
                elif st == 200:
                    res.fail("%s /healthz said 200 during a %.0f s Redis stall" % (g.name, stall))
            time.sleep(max(0.0, stall - (time.monotonic() - t0)))
        finally:
            dep.redis.signal(signal.SIGCONT)
        end = time.monotonic()
        load.log("FAULT redis SIGCONT %.3f" % end)
        hz = dep.wait_all_healthy(ctx.recovery_bound)
        # A request sent during the stall gets its answer (`unavailable`)
        # within the bound, not after the whole stall.
        time.sleep(0.5)
        worst = load.max_latency(t0, end)
        res.info.append("stall %.0f s: the longest a request waited during it: %.2f s" % (stall, worst))
        if worst > ctx.stall_reply_bound:
            res.fail("a request waited %.1f s of the %.0f s stall for its answer (bound %.1f s: `unavailable`)"
                     % (worst, stall, ctx.stall_reply_bound))
        return [{"what": "redis SIGSTOP %.0f s" % stall, "end": end, "healthz": hz}]
    return f


def fault_worker_kill9(kills, down=1.0):
    def f(ctx, dep, load, res):
        recs = []
        for k in range(kills):
            if k:
                wait_assign(load, recs[-1]["end"], ctx.worker_recovery_bound)
                time.sleep(ctx.between)
            dep.worker.kill9()
            load.log("FAULT worker kill -9 #%d" % (k + 1))
            time.sleep(down)
            dep.worker.start()
            end = time.monotonic()
            recs.append({"what": "worker kill -9 #%d" % (k + 1), "end": end,
                         "healthz": dep.wait_all_healthy(ctx.recovery_bound)})
        return recs
    return f


def fault_failpoint(ctx, dep, load, res):
    """The worker runs matchwire-server-failpoints with
    MW_FAILPOINTS=worker_after_commit: it aborts right after its first
    assignment is committed, before the publish. A normal worker takes over."""
    if not dep.worker.wait_exit(15):
        res.fail("the failpoint worker did not abort within 15 s of load (failpoint never fired)")
        dep.worker.kill9()
    else:
        rc = dep.worker.popen.returncode
        res.info.append("failpoint worker exited %s" % rc)
        if rc not in (-signal.SIGABRT, -signal.SIGKILL, 134, 137):
            res.fail("failpoint worker exited %s, not by its failpoint (SIGABRT or SIGKILL)" % rc)
        else:
            with open(dep.worker.log_path, "rb") as f:
                if b"worker_after_commit" not in f.read():
                    res.info.append("(its log does not name the failpoint worker_after_commit)")
    load.log("FAULT failpoint worker gone at %.3f" % time.monotonic())
    dep.replace_worker()
    end = time.monotonic()
    return [{"what": "worker aborted after commit", "end": end,
             "healthz": dep.wait_all_healthy(ctx.worker_recovery_bound)}]


def fault_gateway_sigterm(kills):
    def f(ctx, dep, load, res):
        recs = []
        for k in range(kills):
            if k:
                wait_assign(load, recs[-1]["end"], ctx.worker_recovery_bound)
                time.sleep(ctx.between)
            g = dep.gateways[k % 2]
            t = time.monotonic()
            load.sigterms.append(t)
            load.log("FAULT %s SIGTERM %.3f" % (g.name, t))
            s = g.sigterm(3.0)
            if s is None:
                res.fail("%s did not exit within 3 s of SIGTERM under load" % g.name)
            else:
                rc = g.popen.returncode
                res.info.append("%s exited %s %.2f s after SIGTERM" % (g.name, rc, s))
                if rc != 0:
                    res.fail("%s exited %s after SIGTERM (want 0)" % (g.name, rc))
            time.sleep(1.0)
            g.start()
            recs.append({"what": "%s SIGTERM #%d" % (g.name, k + 1), "end": t,
                         "healthz": dep.wait_all_healthy(ctx.recovery_bound)})
        return recs
    return f


# ---------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------

# Each scenario runs its suite's runs, then, when the suite lists it in
# `auth_extra` (and the whole suite is not auth on already: run.py --auth),
# one more run with auth on, shown as `<scenario>/auth`.

def runs(ctx, name, n, one):
    """one(i, auth) -> Result; n runs, then the extra auth-on run."""
    out = [one(i, False) for i in range(n)]
    if ctx.auth_extra(name):
        out.append(one(0, True))
    return out


def redis_kill9(ctx, fsync):
    name = "redis-kill9-" + fsync
    return runs(ctx, name, ctx.p("redis_runs"),
                lambda i, auth: load_run(ctx, name, i + 1, fault_redis_kill9(ctx.p("redis_kills"), 1.0),
                                         appendfsync=fsync, recovery_bound=ctx.recovery_bound, auth=auth))


def redis_sigstop(ctx):
    stalls = ctx.p("stalls")

    def one(i, auth):
        stall = stalls[i] if not auth else ctx.p("auth_stall")
        return load_run(ctx, "redis-sigstop", i + 1, fault_redis_sigstop(stall),
                        recovery_bound=ctx.recovery_bound, auth=auth)
    return runs(ctx, "redis-sigstop", len(stalls), one)


def worker_kill9(ctx):
    return runs(ctx, "worker-kill9", ctx.p("worker_runs"),
                lambda i, auth: load_run(ctx, "worker-kill9", i + 1, fault_worker_kill9(ctx.p("worker_kills")),
                                         recovery_bound=ctx.worker_recovery_bound, auth=auth))


def worker_failpoint(ctx):
    def one(i, auth):
        if not os.access(ctx.failpoint_server, os.X_OK):
            r = Result("worker-failpoint" + ("/auth" if ctx.auth_for(auth) else ""), i + 1)
            r.fail("binary missing: %s (the test-only server with MW_FAILPOINTS)" % ctx.failpoint_server)
            return r
        return load_run(ctx, "worker-failpoint", i + 1, fault_failpoint,
                        worker_binary=ctx.failpoint_server,
                        worker_env={"MW_FAILPOINTS": "worker_after_commit"},
                        recovery_bound=ctx.worker_recovery_bound, warmup_check=False, auth=auth)
    return runs(ctx, "worker-failpoint", ctx.p("failpoint_runs"), one)


def gateway_sigterm(ctx):
    return runs(ctx, "gateway-sigterm", ctx.p("gateway_runs"),
                lambda i, auth: load_run(ctx, "gateway-sigterm", i + 1, fault_gateway_sigterm(ctx.p("gateway_kills")),
                                         recovery_bound=ctx.recovery_bound, auth=auth))
