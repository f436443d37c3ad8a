#!/bin/sh
# The client on foreign event loops: starts a matchwire-server on a free
# port, runs foreign_loop_uv and foreign_loop_ev against it (each: two
# clients matched, closed, freed), stops the server.
# Usage: foreign_loops.sh SERVER UV_PROGRAM EV_PROGRAM
set -u
server=$1
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$server" --listen "127.0.0.1:$port" >/dev/null 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT
i=0
while ! /usr/bin/python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null; do
    i=$((i + 1))
    [ $i -lt 50 ] || { echo "server did not start" >&2; exit 1; }
    sleep 0.1
done
rc=0
timeout 20 "$2" "ws://127.0.0.1:$port/realtime" || { echo "libuv: failed" >&2; rc=1; }
timeout 20 "$3" "ws://127.0.0.1:$port/realtime" || { echo "libev: failed" >&2; rc=1; }
exit $rc
