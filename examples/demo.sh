#!/usr/bin/env bash
# make demo: starts the local emulator, runs the quickstart against it with
# the rock installed for LUA, and stops the emulator whatever happens.
# Usage: examples/demo.sh LUA TREE
set -u
lua=${1:-lua5.4} tree=${2:?usage: demo.sh LUA TREE}
root=$(cd "$(dirname "$0")/.." && pwd)
abi=${lua#lua}; [ "$lua" = luajit ] && abi=5.1

port=18080
while { exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null; do
  exec 3>&- 3<&-
  port=$((port + 1))
done

log=$(mktemp)
"$root/bin/opentact-emulator" --port "$port" > "$log" 2>&1 &
emulator=$!
trap 'kill -TERM $emulator 2>/dev/null; wait $emulator 2>/dev/null; rm -f "$log"' EXIT INT TERM
for _ in $(seq 1 100); do
  grep -q "listening on" "$log" && break
  kill -0 $emulator 2>/dev/null || break
  sleep 0.1
done
grep -q "listening on" "$log" || { echo "the emulator did not start:" >&2; cat "$log" >&2; exit 1; }
echo "Local Opentact emulator $(grep 'listening on' "$log")"

LUA_PATH="$tree/share/lua/$abi/?.lua;$tree/share/lua/$abi/?/init.lua;;" \
LUA_CPATH="$tree/lib/lua/$abi/?.so;;" \
OPENTACT_URL="http://127.0.0.1:$port" OPENTACT_TOKEN=emulator-token \
  "$lua" "$root/examples/quickstart.lua"
