#!/bin/sh
# check_examples.sh MOONWATCH: every example pipeline passes `moonwatch check`, those of
# examples/kubernetes/ with the environment their pods have (a StatefulSet replica's name and
# MOONWATCH_REPLICAS, for hashmod_shard); every example Alloy configuration file too, and its
# `moonwatch convert` output as well.
set -eu
bin=$1
cd "$(dirname "$0")/.."
n=0
for f in examples/*.lua examples/kubernetes/*.lua; do
  MOONWATCH_REPLICAS=3 HOSTNAME=moonwatch-scraper-0 "$bin" check --component.path=examples/components "$f"
  n=$((n + 1))
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for f in examples/*.alloy; do
  "$bin" check --component.path=examples/components "$f"
  converted="$tmp/$(basename "$f" .alloy).lua"
  "$bin" convert "$f" >"$converted"
  "$bin" check --component.path=examples/components "$converted"
  n=$((n + 1))
done
echo "$n passed, 0 failed"
