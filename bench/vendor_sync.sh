#!/usr/bin/env bash
# The vendor's way, as Opentact's own helper script does it: page through
# the account's leases with curl and jq, one page after another, then send
# the batches of 100 uuids one after another. With NUMBERS_FILE, only the
# leases of those numbers are attached (the sync job); without, every page.
# Prints wall seconds. Usage: vendor_sync.sh BASE_URL CONN [NUMBERS_FILE]
set -euo pipefail
base=$1 conn=$2 numbers=${3:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s%N)
skip=0 total=1
while [ "$skip" -lt "$total" ]; do
  curl -sf -X POST -H 'X-Auth-Token: emulator-token' -H 'Content-Type: application/json' -d '{}' \
    "$base/lease/tn/search?take=100&skip=$skip" > "$tmp/page.json"
  total=$(jq -r '.payload.total' "$tmp/page.json")
  got=$(jq -r '.payload.data | length' "$tmp/page.json")
  jq -r '.payload.data[] | "\(.tn.tn) \(.uuid)"' "$tmp/page.json" >> "$tmp/leases.txt"
  [ "$got" -gt 0 ] || break
  skip=$((skip + got))
done
if [ -n "$numbers" ]; then
  awk 'NR == FNR { want[$1] = 1; next } ($1 in want) { print $2 }' "$numbers" "$tmp/leases.txt" > "$tmp/uuids.txt"
else
  awk '{ print $2 }' "$tmp/leases.txt" > "$tmp/uuids.txt"
fi
split -l 100 "$tmp/uuids.txt" "$tmp/batch-"
for f in "$tmp"/batch-*; do
  body=$(jq -R -s -c '{add: (split("\n") | map(select(length > 0)))}' "$f")
  curl -sf -X POST -H 'X-Auth-Token: emulator-token' -H 'Content-Type: application/json' \
    -d "$body" "$base/sip/connection/$conn/tnlease" | jq -e '.success' > /dev/null
done
awk -v ns=$(( $(date +%s%N) - start )) 'BEGIN { printf "wall_s=%.4f\n", ns / 1e9 }'
