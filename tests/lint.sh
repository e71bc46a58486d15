#!/bin/sh
# lint.sh clang-format|luacheck|ffi-boundary: the style checks that `make lint` and ctest run.
set -eu
cd "$(dirname "$0")/.."
case "$1" in
clang-format)
  files=$(git ls-files 'runtime/*.c' 'runtime/*.h' 'tests/*.c' 'tests/*.h' 2>/dev/null || find runtime tests -name '*.[ch]')
  # shellcheck disable=SC2086
  clang-format --dry-run --Werror $files
  echo "clang-format: $(echo $files | wc -w) files clean"
  ;;
luacheck)
  dirs=""
  for d in lua stdlib tests examples; do [ -d "$d" ] && dirs="$dirs $d"; done
  # shellcheck disable=SC2086
  luacheck --no-color -q $dirs
  ;;
ffi-boundary)
  # Components (stdlib/) reach C only through the wrapper modules (lua/moonwatch/native/,
  # moonwatch.batch, moonwatch.metrics): no raw FFI call, no ffi library of their own.
  if grep -rnE 'mw_ffi_|ffi\.C\b|require[ (]*["'"'"']ffi["'"'"']|moonwatch\.ffi["'"'"'][ )]*\.C\b' \
    --include='*.lua' stdlib; then
    echo "ffi-boundary: stdlib calls the FFI directly (above); call a moonwatch.native wrapper instead" >&2
    exit 1
  fi
  echo "ffi-boundary: stdlib makes no raw FFI call"
  ;;
*)
  echo "usage: $0 clang-format|luacheck|ffi-boundary" >&2
  exit 2
  ;;
esac
