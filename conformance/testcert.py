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

Other names: `testcert.make(DIR, names=["DNS:otherhost.invalid"],
server="otherhost")` signs a further certificate with the CA of DIR (made
first if DIR has none; its key is `DIR/ca.key`), valid only for the names
given (subjectAltName entries; the subject CN is the first DNS name), into
`otherhost.pem` and `otherhost.key`. The client kit uses it for a
certificate from the right CA for the wrong host (spec/client.md CLI-004).
"""

import os
import subprocess
import sys

DEFAULT_NAMES = ("DNS:localhost", "IP:127.0.0.1", "IP:::1")


def _run(args, cwd):
    subprocess.run(["openssl"] + args, cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)


def make(directory, days=2, names=DEFAULT_NAMES, server="server"):
    os.makedirs(directory, exist_ok=True)
    d = directory
    out = {"ca": os.path.join(d, "ca.pem"),
           "cert": os.path.join(d, server + ".pem"),
           "key": os.path.join(d, server + ".key")}
    if all(os.path.isfile(p) for p in out.values()):
        return out
    names = list(names)
    if not names or not all(n.startswith(("DNS:", "IP:")) for n in names):
        raise ValueError("names: subjectAltName entries DNS:... or IP:..., got %r" % names)
    cn = next((n[4:] for n in names if n.startswith("DNS:")), "localhost")
    if not (os.path.isfile(out["ca"]) and os.path.isfile(os.path.join(d, "ca.key"))):
        _run(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
              "-keyout", "ca.key", "-out", "ca.pem", "-days", str(days),
              "-subj", "/CN=Matchwire test CA", "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign"], d)
    csr, ext = server + ".csr", server + ".ext"
    _run(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
          "-keyout", server + ".key", "-out", csr, "-subj", "/CN=" + cn], d)
    with open(os.path.join(d, ext), "w") as f:
        f.write("basicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth\n"
                "subjectAltName=" + ",".join(names) + "\n")
    _run(["x509", "-req", "-in", csr, "-CA", "ca.pem", "-CAkey", "ca.key",
          "-CAcreateserial", "-out", server + ".pem", "-days", str(days), "-extfile", ext], d)
    for f in (csr, ext, "ca.srl"):
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
