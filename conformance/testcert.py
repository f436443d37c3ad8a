#!/usr/bin/python3
"""testcert: a throwaway test CA and a server certificate for wss:// tests.

Generated at test time with the `openssl` command (Debian's openssl package),
never committed. The server certificate is valid for `localhost`, `127.0.0.1`
and `::1`, signed by the CA; clients trust the CA file (`ca.pem`), never the
server certificate itself, so chain verification and host-name checks run as
in production.

    /usr/bin/python3 conformance/testcert.py DIR      # prints the three paths

From Python: `paths = testcert.make(DIR)` -> dict with `ca` (CA certificate,
PEM), `cert` (server certificate, PEM), `key` (server private key, PEM,
unencrypted). Existing files in DIR are reused when all three are present.
"""

import os
import subprocess
import sys


def _run(args, cwd):
    subprocess.run(["openssl"] + args, cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)


def make(directory, days=2):
    os.makedirs(directory, exist_ok=True)
    out = {"ca": os.path.join(directory, "ca.pem"),
           "cert": os.path.join(directory, "server.pem"),
           "key": os.path.join(directory, "server.key")}
    if all(os.path.isfile(p) for p in out.values()):
        return out
    d = directory
    _run(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
          "-keyout", "ca.key", "-out", "ca.pem", "-days", str(days),
          "-subj", "/CN=Matchwire test CA", "-addext", "basicConstraints=critical,CA:TRUE",
          "-addext", "keyUsage=critical,keyCertSign,cRLSign"], d)
    _run(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
          "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"], d)
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write("basicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth\n"
                "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n")
    _run(["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
          "-CAcreateserial", "-out", "server.pem", "-days", str(days), "-extfile", "server.ext"], d)
    for f in ("server.csr", "server.ext", "ca.srl"):
        try:
            os.unlink(os.path.join(d, f))
        except FileNotFoundError:
            pass
    os.chmod(out["key"], 0o600)
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: testcert.py DIR")
    p = make(sys.argv[1])
    for k in ("ca", "cert", "key"):
        print("%s %s" % (k, p[k]))
