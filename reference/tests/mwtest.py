"""mwtest: the one copy of what the reference's Python integration tests
share (smoke_server.py, fault_*.py, edge_faults.py): free loopback ports,
starting the built server and a private redis-server, /healthz, process CPU.

Every wait has a bound; every process started here is the caller's to stop
(`Procs` kills what it holds on exit, even on a failure)."""

import os
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

TIMEOUT = 5.0


def free_port():
    """A TCP port free on 127.0.0.1 right now (bind to port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(binary, port, *extra, env=None, drain=True):
    """Starts `binary --listen 127.0.0.1:port extra...` and returns once it
    printed its "listening on" banner (the port is bound). With drain, a
    thread keeps reading its output so a chatty log never blocks it."""
    proc = subprocess.Popen([binary, "--listen", f"127.0.0.1:{port}", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    seen = []
    while len(seen) < 50:  # warnings (e.g. auth off) may come before the banner
        line = proc.stdout.readline()
        seen.append(line)
        if not line or "listening on" in line:
            break
    if "listening on" not in seen[-1]:
        proc.kill()
        proc.wait()
        raise SystemExit(f"server did not start: {''.join(seen)!r}")
    if drain:
        threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
    return proc


def start_redis(port, tmpdir, *extra):
    """A private redis-server on 127.0.0.1:port (no RDB snapshots; extra
    arguments e.g. "--appendonly", "yes"), and a redis-py client once it
    answers PING. Returns (proc, client)."""
    import redis
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--dir", tmpdir, *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    r = redis.Redis(port=port, socket_timeout=TIMEOUT)
    deadline = time.monotonic() + 2 * TIMEOUT
    while True:
        try:
            if r.ping():
                return proc, r
        except (redis.ConnectionError, redis.BusyLoadingError):
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                proc.wait()
                raise
            time.sleep(0.05)


def healthz(port, timeout=1.0):
    """The /healthz status code, or None when it does not answer in time."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=timeout) as res:
            return res.status
    except urllib.error.HTTPError as e:
        return e.code
    except Exception:
        return None


def wait_status(port, want, within, proc=None):
    """Waits until /healthz answers `want`; returns the seconds it took.
    Fails when it does not within `within` s, or when proc exits."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < within:
        if healthz(port) == want:
            return time.monotonic() - t0
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"instance on {port} exited: {proc.returncode}")
        time.sleep(0.05)
    raise AssertionError(f"/healthz on {port} not {want} within {within} s")


def cpu_seconds(pid):
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Procs:
    """Processes to kill and a temporary directory to remove, whatever
    happens: `with Procs() as p: p.add(start_server(...))`."""

    def __init__(self):
        import tempfile
        self.tmp = tempfile.mkdtemp(prefix="mw-test-")
        self.procs = []

    def add(self, proc):
        self.procs.append(proc)
        return proc

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        import shutil
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)
        return False
