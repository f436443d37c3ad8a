#!/usr/bin/python3
"""The worked example adapter (spec/testing.md TST-060..TST-079): JSON lines
on stdin (commands) and stdout (events), driving example_client.Client.

    conformance/client/run --client-cmd "/usr/bin/python3 conformance/client/example_adapter.py"
    ... --client-cmd "/usr/bin/python3 conformance/client/example_adapter.py --fault no_jitter"
    ... --client-cmd "/usr/bin/python3 conformance/client/example_adapter.py --token-form query"
    ... --client-cmd "/usr/bin/python3 conformance/client/example_adapter.py --tls-failure retry"

`connect` may carry `ca` (a CA file for wss://), `token` (presented at every
handshake) and `tokens` (the answers of the refresh callback, in order; each
call prints {"event":"tokenRefresh"}; when they run out the callback answers
no token). Without `tokens` the client has no refresh callback.

An adapter for another client has the same shape: read a line, call the
client, print each client event as one JSON line, flush.
"""
import argparse
import asyncio
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import example_client  # noqa: E402


def emit(ev):
    sys.stdout.write(json.dumps(ev, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def refresher(tokens):
    """The application's refresh callback, scripted by the kit (TST-061)."""
    if tokens is None:
        return None
    left = list(tokens)

    def refresh():
        emit({"event": "tokenRefresh"})
        return left.pop(0) if left else None
    return refresh


async def main(faults, token_form, tls_failure):
    client = example_client.Client(emit, faults, token_form, tls_failure)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            break
        try:
            c = json.loads(line)
        except ValueError:
            continue
        cmd = c.get("cmd")
        if cmd == "connect":
            await client.connect(c["url"], ca=c.get("ca"), token=c.get("token"),
                                 refresh=refresher(c.get("tokens")))
        elif cmd == "enqueue":
            await client.enqueue(c.get("ref"), c.get("queue"), c.get("playerId"), c.get("attributes"))
        elif cmd == "watch":
            await client.watch(c["ticketId"])
        elif cmd == "cancel":
            await client.cancel(c["ticketId"])
        elif cmd == "close":
            await client.close()
            break
    if not client.closing:
        await client.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fault", action="append", default=[], choices=sorted(example_client.FAULTS))
    ap.add_argument("--list-faults", action="store_true")
    ap.add_argument("--token-form", choices=("header", "query"), default="header",
                    help="Authorization: Bearer (default) or the access_token query parameter")
    ap.add_argument("--tls-failure", choices=("stop", "retry"), default="stop",
                    help="after a server certificate that fails verification: stop as 1015 (a native "
                         "client, default) or retry as after 1006 (what a browser client does)")
    a = ap.parse_args()
    if a.list_faults:
        for k, (what, tests) in sorted(example_client.FAULTS.items()):
            print("%-26s %s (caught by %s)" % (k, what, ", ".join(tests)))
        sys.exit(0)
    try:
        asyncio.run(main(set(a.fault), a.token_form, a.tls_failure))
    except SystemExit:
        raise
    except KeyboardInterrupt:
        pass
