"""Processes for the fault suite: a private tmp dir, free loopback ports,
redis-server and matchwire-server instances started and killed by us, and a
sampler that reads CPU (/proc/PID/stat) and RSS (/proc/PID/status VmRSS).

Every process started here is registered in PROCS and killed by cleanup(),
which run.py calls from atexit and from its SIGINT/SIGTERM handlers. Every
wait has a timeout.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request

PROCS = []          # every Popen we started, for cleanup()
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_MB = 1.0 / 1024  # VmRSS is in kB


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def cleanup():
    for p in list(PROCS):
        if p.poll() is None:
            try:
                p.kill()
            except OSError:
                pass
    for p in list(PROCS):
        try:
            p.wait(timeout=5)
        except Exception:
            pass
    PROCS.clear()


def cpu_ticks(pid):
    """utime + stime of pid in clock ticks, or None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None
    fields = s[s.rindex(")") + 2:].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[11]) + int(fields[12])


def rss_mb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * PAGE_MB
    except OSError:
        return None
    return None


def cpu_percent(pid, window=1.0):
    """CPU % of pid over one window (100 = one core busy)."""
    a = cpu_ticks(pid)
    t0 = time.monotonic()
    time.sleep(window)
    b = cpu_ticks(pid)
    if a is None or b is None:
        return None
    return 100.0 * (b - a) / CLK_TCK / (time.monotonic() - t0)


def http_get(port, path="/healthz", timeout=1.0):
    """(status, body, seconds) of GET http://127.0.0.1:port/path; status None on
    no answer within timeout."""
    t0 = time.monotonic()
    try:
        r = urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=timeout)
        return r.status, r.read(), time.monotonic() - t0
    except urllib.error.HTTPError as e:
        return e.code, e.read(), time.monotonic() - t0
    except Exception as e:  # timeout, refused, reset
        return None, str(e).encode(), time.monotonic() - t0


UPGRADE = (b"GET /realtime HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
           b"Sec-WebSocket-Protocol: matchwire.v1\r\n")


def upgrade_request(token=None):
    """A raw WebSocket handshake to /realtime, with `Authorization: Bearer
    token` when a token is given."""
    return UPGRADE + (b"Authorization: Bearer " + token.encode("ascii") + b"\r\n" if token else b"") + b"\r\n"


def handshake_status(port, token=None, timeout=1.0):
    """The HTTP status of a raw handshake (None: no answer within timeout)."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except OSError:
        return None
    try:
        s.settimeout(timeout)
        s.sendall(upgrade_request(token))
        head = b""
        end = time.monotonic() + timeout
        while b"\r\n" not in head and time.monotonic() < end:
            d = s.recv(4096)
            if not d:
                break
            head += d
        parts = head.split(b" ", 2)
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    except OSError:
        return None
    finally:
        s.close()


class Proc:
    """One process we started: name, Popen, port, log path."""

    def __init__(self, name, argv, log, port=None, env=None):
        self.name, self.argv, self.log_path, self.port, self.env = name, argv, log, port, env
        self.popen = None
        self.started = []   # monotonic start times
        self.max_cpu = 0.0
        self.max_rss = 0.0
        self.start()

    def start(self):
        logf = open(self.log_path, "ab")
        logf.write(("=== %s start %s\n" % (time.strftime("%H:%M:%S"), " ".join(self.argv))).encode())
        logf.flush()
        env = dict(os.environ)
        env.pop("MW_FAILPOINTS", None)
        env.update(self.env or {})
        self.popen = subprocess.Popen(self.argv, stdout=logf, stderr=subprocess.STDOUT, env=env,
                                      start_new_session=True)
        logf.close()
        PROCS.append(self.popen)
        self.started.append(time.monotonic())
        return self

    @property
    def pid(self):
        return self.popen.pid

    def alive(self):
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def kill9(self, timeout=5):
        self.signal(signal.SIGKILL)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass

    def sigterm(self, within=3.0):
        """SIGTERM; seconds until it exited (None when it did not within
        `within`: then it is killed)."""
        if not self.alive():
            return 0.0
        t0 = time.monotonic()
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=within)
            return time.monotonic() - t0
        except subprocess.TimeoutExpired:
            self.kill9()
            return None

    def healthz(self, timeout=1.0):
        return http_get(self.port, "/healthz", timeout)

    def wait_healthy(self, timeout=15.0):
        """Seconds until /healthz answered 200, or None."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if not self.alive():
                return None
            st, _, _ = self.healthz(timeout=1.0)
            if st == 200:
                return time.monotonic() - t0
            time.sleep(0.05)
        return None

    def wait_exit(self, timeout):
        try:
            self.popen.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            return False


class Sampler(threading.Thread):
    """Samples CPU % (over `window` s) and RSS of every watched process."""

    def __init__(self, window=1.0):
        super().__init__(daemon=True)
        self.window = window
        self.procs = []
        self.stop_ev = threading.Event()
        self.last = {}

    def watch(self, proc):
        self.procs.append(proc)

    def run(self):
        while not self.stop_ev.is_set():
            now = time.monotonic()
            for p in list(self.procs):
                if not p.alive():
                    self.last.pop(id(p), None)
                    continue
                t = cpu_ticks(p.pid)
                r = rss_mb(p.pid)
                if r is not None:
                    p.max_rss = max(p.max_rss, r)
                prev = self.last.get(id(p))
                if t is not None and prev and prev[0] == p.pid and now - prev[1] >= self.window * 0.9:
                    pct = 100.0 * (t - prev[2]) / CLK_TCK / (now - prev[1])
                    p.max_cpu = max(p.max_cpu, pct)
                    self.last[id(p)] = (p.pid, now, t)
                elif t is not None and (not prev or prev[0] != p.pid):
                    self.last[id(p)] = (p.pid, now, t)
            self.stop_ev.wait(0.25)

    def stop(self):
        self.stop_ev.set()
        self.join(timeout=3)


class Redis(Proc):
    """redis-server in the foreground (so kill -9 and SIGSTOP hit it, not a
    daemonizing parent) with an append-only file in its own dir."""

    def __init__(self, rundir, appendfsync="always"):
        self.dir = os.path.join(rundir, "redis")
        self.repairs = []
        os.makedirs(self.dir, exist_ok=True)
        port = free_port()
        argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", self.dir,
                "--save", "", "--appendonly", "yes", "--appendfsync", appendfsync,
                "--protected-mode", "no", "--loglevel", "notice"]
        super().__init__("redis", argv, os.path.join(rundir, "redis.log"), port)
        if not self.wait_ready():
            raise RuntimeError("redis-server did not start (see %s)" % self.log_path)

    def url(self):
        return "redis://127.0.0.1:%d/0" % self.port

    def client(self, timeout=5):
        import redis
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=timeout,
                           socket_connect_timeout=timeout, decode_responses=True)

    def wait_ready(self, timeout=15.0):
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if not self.alive():
                return False
            try:
                c = self.client(timeout=1)
                if c.ping():
                    # Loading the AOF answers LOADING errors; ping works only after.
                    c.close()
                    return True
            except Exception:
                pass
            time.sleep(0.05)
        return False

    def restart(self):
        """Starts it again on the same port and AOF. A kill -9 can cut the
        AOF inside a MULTI/EXEC block (Redis wraps a script's effects in
        one); redis-server 7.0 then truncates at the short read but leaves
        the dangling MULTI in the file, appends after it, and at the next
        restart drops every write up to the next EXEC ("MULTI calls can not
        be nested"): acknowledged writes lost by Redis, not by Matchwire. So
        the AOF is checked first and, when damaged, repaired as an operator
        would (redis-check-aof --fix: truncated before the dangling MULTI)."""
        if self.alive():
            self.kill9()
        self.repair_aof()
        self.start()
        return self.wait_ready()

    def repair_aof(self):
        manifests = []
        for root, _dirs, files in os.walk(self.dir):
            manifests += [os.path.join(root, f) for f in files if f.endswith(".manifest")]
        for m in manifests:
            chk = subprocess.run(["redis-check-aof", m], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 timeout=60)
            if chk.returncode == 0:
                continue
            fix = subprocess.run(["redis-check-aof", "--fix", m], input=b"y\n", stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, timeout=60)
            self.repairs.append(fix.stdout.decode("utf-8", "replace").strip().splitlines()[-2:])
            with open(self.log_path, "ab") as f:
                f.write(b"=== redis-check-aof --fix:\n" + fix.stdout)

    def log_damage(self):
        """Lines where redis-server itself reports a damaged AOF."""
        try:
            with open(self.log_path, "rb") as f:
                return [ln.decode("utf-8", "replace").strip() for ln in f
                        if b"CRITICAL" in ln or b"Bad file format" in ln]
        except OSError:
            return []

    def healthz(self, timeout=1.0):
        return (200 if self.alive() else None), b"", 0.0


def server_argv(binary, port, role="all", channel="memory", redis_url=None, extra=(), auth=None):
    """auth: an auth.Auth (auth mode: its secret and service token files)."""
    a = [binary, "--listen", "127.0.0.1:%d" % port, "--role", role, "--channel", channel,
         "--grace", "1", "--ticket-ttl", "30", "--assigned-ttl", "60", "--log-level", "1"]
    if redis_url:
        a += ["--redis", redis_url]
    if auth is not None:
        a += auth.args
    return a + list(extra)


class RunDir:
    """A run's private directory; removed when the run passed."""

    def __init__(self, root, name):
        self.path = os.path.join(root, name)
        os.makedirs(self.path, exist_ok=True)

    def file(self, name):
        return os.path.join(self.path, name)

    def write_json(self, name, obj):
        with open(self.file(name), "w") as f:
            json.dump(obj, f, indent=1, default=str)

    def remove(self):
        shutil.rmtree(self.path, ignore_errors=True)
