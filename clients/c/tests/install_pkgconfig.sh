#!/bin/sh
# The installed C client: `cmake --install` into a scratch prefix, then a
# tiny program built with nothing but `pkg-config --cflags --libs
# matchwire-client` and run. Usage: install_pkgconfig.sh BUILD_DIR PREFIX SOURCE.c
set -eu
build=$1
prefix=$2
src=$3
rm -rf "$prefix"
cmake --install "$build" --prefix "$prefix" --component client >/dev/null
pc=$(find "$prefix" -name matchwire-client.pc | head -1)
[ -n "$pc" ] || { echo "no matchwire-client.pc under $prefix" >&2; exit 1; }
test -f "$prefix/include/matchwire/client.h"
export PKG_CONFIG_PATH="$(dirname "$pc")"
flags=$(pkg-config --cflags --libs matchwire-client)
echo "pkg-config --cflags --libs matchwire-client: $flags"
libdir=$(pkg-config --variable=libdir matchwire-client)
${CC:-cc} -std=c11 -Wall -Werror -o "$prefix/hello" "$src" $flags
LD_LIBRARY_PATH="$libdir" "$prefix/hello"
