# Shell helpers shared by scripts/conformance.sh and scripts/faults.sh
# (sourced, not run). Needs $PYTHON (Debian's /usr/bin/python3).

# A TCP port free on 127.0.0.1 right now.
free_port() {
    "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_healthy URL [SECONDS]: waits (default 10 s) for 200 from URL/healthz.
wait_healthy() {
    "$PYTHON" - "$1" "${2:-10}" <<'PY'
import sys, time, urllib.request
deadline = time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    try:
        if urllib.request.urlopen(sys.argv[1] + "/healthz", timeout=1).status == 200:
            sys.exit(0)
    except Exception:
        pass
    time.sleep(0.1)
print("not healthy: " + sys.argv[1], file=sys.stderr)
sys.exit(1)
PY
}
