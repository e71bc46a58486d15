#!/bin/sh
# rockspec.sh: `luarocks make` installs the binary and every Lua module into a
# fresh tree, and the installed binary checks an example from there.
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# the committed files only (a clean tree, as luarocks would fetch it)
(cd "$src" && git ls-files -z CMakeLists.txt cmake runtime lua stdlib rockspec examples | xargs -0 cp --parents -t "$tmp")
mkdir -p "$tmp/stdlib"
mkdir -p "$tmp/tests" && printf '' > "$tmp/tests/CMakeLists.txt"
cd "$tmp"
luarocks --lua-version=5.1 --tree="$tmp/tree" make rockspec/moonwatch-scm-1.rockspec >"$tmp/luarocks.log" 2>&1 ||
  { cat "$tmp/luarocks.log"; exit 1; }
bin="$tmp/tree/bin/moonwatch"
test -x "$bin" || { echo "no binary at $bin"; ls -R "$tmp/tree" | head -50; exit 1; }
for m in lua/moonwatch/*.lua lua/moonwatch/alloy/*.lua; do
  test -f "$tmp/tree/share/lua/5.1/${m#lua/}" || { echo "module $m not installed"; exit 1; }
done
"$bin" version
cd /  # away from the source copy: the installed binary must find its own modules
"$bin" check --component.path="$tmp/examples/components" "$tmp/examples/self-monitoring.lua"
"$bin" check "$tmp/examples/self-monitoring.alloy"
echo "2 passed, 0 failed"
