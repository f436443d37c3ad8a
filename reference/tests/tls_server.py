#!/usr/bin/env python3
"""The reference server's TLS configuration end to end (--tls-cert,
--tls-key; spec/messages.md MSG-150), what the wire suite cannot see: its
start-up refusals and its log.

- Refusals: a missing certificate or key file, a file that is not PEM, a key
  that is not the certificate's, an encrypted key (never a passphrase
  prompt: stdin is a terminal-less pipe and the test bounds the wait), one
  of the two flags (or variables) without the other: the server exits
  non-zero within seconds, never listens (no half-started server), and its
  error names the file, never the key's content.
- A key file other users can read, and an expired certificate, are served,
  each with a warning.
- With both: the banner says https:// and wss://, MATCHWIRE_TLS_CERT and
  MATCHWIRE_TLS_KEY work as the flags do, /healthz answers over https://
  (the test CA verifies the chain and the host name), a plaintext request
  gets no HTTP answer, and with a debug log no byte of the key reaches it.

The certificates come from conformance/testcert.py (made here, in a
temporary directory). Usage: tls_server.py MATCHWIRE_SERVER_BINARY"""
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "conformance"))
import testcert  # noqa: E402
from mwtest import free_port  # noqa: E402

FAILS = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        FAILS.append(what)


def listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def refused(binary, args, env_extra, want, secret_lines, what):
    """Runs the server; expects an exit != 0 within 10 s with `want` in its
    output, the port never listening, no secret line in the output."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MATCHWIRE_TLS_")}
    env.update(env_extra)
    p = subprocess.Popen([binary, "--listen", "127.0.0.1:%d" % port] + args, env=env,
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    try:
        out, _ = p.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
        check(False, "%s: still running after 10 s (a passphrase prompt?)" % what)
        return
    check(p.returncode not in (0, None), "%s: exit status %s (non-zero)" % (what, p.returncode))
    check(want in out, "%s: says %r" % (what, want) + ("" if want in out else " (output: %r)" % out[-400:]))
    check("listening on" not in out and not listening(port), "%s: never listened" % what)
    check(not any(ln in out for ln in secret_lines), "%s: no key material in the output" % what)


def key_lines(path):
    with open(path) as f:
        return [ln.strip() for ln in f if ln.strip() and not ln.startswith("-----")]


def main(binary):
    tmp = tempfile.mkdtemp(prefix="mw-tls-server-")
    try:
        c = testcert.make(os.path.join(tmp, "a"))
        other = testcert.make(os.path.join(tmp, "b"))  # another CA, another key
        secret = key_lines(c["key"])
        enc = os.path.join(tmp, "enc.key")
        subprocess.run(["openssl", "pkey", "-in", c["key"], "-aes256", "-passout", "pass:pw",
                        "-out", enc], check=True)
        os.chmod(enc, 0o600)
        notpem = os.path.join(tmp, "notpem")
        with open(notpem, "w") as f:
            f.write("this is not a certificate\n")
        missing = os.path.join(tmp, "missing.pem")

        refused(binary, ["--tls-cert", missing, "--tls-key", c["key"]], {}, missing, secret,
                "missing certificate")
        refused(binary, ["--tls-cert", c["cert"], "--tls-key", missing], {}, missing, secret,
                "missing key")
        refused(binary, ["--tls-cert", notpem, "--tls-key", c["key"]], {}, "no PEM certificate",
                secret, "certificate not PEM")
        refused(binary, ["--tls-cert", c["cert"], "--tls-key", notpem], {}, "no usable PEM private key",
                secret, "key not PEM")
        refused(binary, ["--tls-cert", c["cert"], "--tls-key", c["cert"]], {}, "no usable PEM private key",
                secret, "a certificate given as the key")
        refused(binary, ["--tls-cert", c["cert"], "--tls-key", other["key"]], {},
                "is not the key of --tls-cert", secret + key_lines(other["key"]), "mismatched key")
        refused(binary, ["--tls-cert", c["cert"], "--tls-key", enc], {}, "encrypted keys are not supported",
                secret, "encrypted key")
        refused(binary, ["--tls-cert", c["cert"]], {}, "--tls-key (or MATCHWIRE_TLS_KEY) is missing",
                secret, "--tls-cert alone")
        refused(binary, [], {"MATCHWIRE_TLS_KEY": c["key"]}, "--tls-cert (or MATCHWIRE_TLS_CERT) is missing",
                secret, "MATCHWIRE_TLS_KEY alone")
        if os.geteuid() != 0:
            unreadable = os.path.join(tmp, "unreadable.key")
            shutil.copy(c["key"], unreadable)
            os.chmod(unreadable, 0)
            refused(binary, ["--tls-cert", c["cert"], "--tls-key", unreadable], {}, "cannot read",
                    secret, "unreadable key")
        else:
            print("skip unreadable key: running as root (root reads any file)")

        # An expired certificate: served, with a warning.
        exp = os.path.join(tmp, "expired")
        os.makedirs(exp)
        subprocess.run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", "k.pem", "-out", "r.csr", "-subj", "/CN=localhost"],
                       cwd=exp, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(["openssl", "x509", "-req", "-in", "r.csr", "-signkey", "k.pem", "-days", "-1",
                        "-out", "c.pem"], cwd=exp, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        os.chmod(os.path.join(exp, "k.pem"), 0o600)
        port = free_port()
        p = subprocess.Popen([binary, "--listen", "127.0.0.1:%d" % port, "--tls-cert",
                              os.path.join(exp, "c.pem"), "--tls-key", os.path.join(exp, "k.pem")],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
        seen = ""
        while "listening on" not in seen:
            line = p.stdout.readline()
            if not line:
                break
            seen += line
        p.terminate()
        p.communicate(timeout=10)
        check("has expired" in seen and "listening on" in seen,
              "an expired certificate is served with a warning")

        # Served: by the variables, a world-readable key (warned), debug log.
        loose = os.path.join(tmp, "loose.key")
        shutil.copy(c["key"], loose)
        os.chmod(loose, 0o644)
        port = free_port()
        env = dict(os.environ, MATCHWIRE_TLS_CERT=c["cert"], MATCHWIRE_TLS_KEY=loose)
        p = subprocess.Popen([binary, "--listen", "127.0.0.1:%d" % port, "--log-level", "4"], env=env,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
        try:
            banner = ""
            deadline = time.monotonic() + 10
            while "listening on" not in banner and time.monotonic() < deadline:
                line = p.stdout.readline()
                if not line:
                    break
                banner += line
            check("https://127.0.0.1:%d/" % port in banner and "wss://127.0.0.1:%d/realtime" % port in banner,
                  "banner names https:// and wss:// (%r)" % banner.strip().splitlines()[-1:])
            check("can be read by other users" in banner and loose in banner,
                  "a key file with mode 644 is warned about")
            ctx = ssl.create_default_context(cafile=c["ca"])
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
                    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                        got = b""
                        while True:
                            chunk = s.recv(4096)
                            if not chunk:
                                break
                            got += chunk
                        check(got.startswith(b"HTTP/1.1 200"), "GET /healthz over https (%r)" % got[:40])
                        check(s.version() in ("TLSv1.2", "TLSv1.3"), "negotiated %s" % s.version())
            except (ssl.SSLError, OSError) as e:
                check(False, "GET /healthz over https: %s" % e)
            with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
                raw.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
                try:
                    got = raw.recv(4096)
                except ConnectionResetError:
                    got = b""
                check(not got.startswith(b"HTTP/"), "plaintext request not answered (%r)" % got[:40])
        finally:
            p.terminate()
            try:
                out, _ = p.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                out, _ = p.communicate()
        check(p.returncode == 0, "SIGTERM: exit 0 (got %s)" % p.returncode)
        check(not any(ln in banner + out for ln in secret), "debug log: no key material")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("tls_server: %d failure(s)" % len(FAILS))
    return 1 if FAILS else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
