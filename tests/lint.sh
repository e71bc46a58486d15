#!/bin/sh
# lint.sh clang-format|luacheck|layers|ffi-boundary: the style and layering checks that `make lint`
# and ctest run.
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
layers)
  # What each runtime/ folder may include (from runtime/, "dir/file.h"), and no
  # shell-outs from Lua: the event loop never waits on a child process.
  status=0
  allowed() { # folder -> the folders its files may include
    case "$1" in
    base) echo "base" ;;
    model) echo "base model" ;;
    exposition) echo "base model exposition" ;;
    scrape) echo "base model exposition scrape" ;;
    relabel) echo "base model relabel" ;;
    journal) echo "base model relabel journal" ;;
    storage) echo "base model storage" ;;
    remote) echo "base model exposition relabel storage remote" ;;
    loki) echo "base model storage loki" ;;
    http) echo "base http" ;;
    exporters/node | exporters/process) echo "base model exposition $1" ;;
    tail) echo "base model tail" ;;
    logproc) echo "base logproc" ;;
    pprof) echo "base pprof" ;;
    pyroscope) echo "base pyroscope" ;;
    discovery) echo "base discovery" ;;
    lua) echo "base http lua" ;;
    esac
  }
  for f in $(git ls-files 'runtime/*.c' 'runtime/*.h'); do
    dir=${f#runtime/}
    dir=${dir%/*}
    [ "$dir" = "${f#runtime/}" ] && continue # runtime/ffi.h
    ok=$(allowed "$dir")
    for inc in $(sed -n 's/^#include "\([a-z_/]*\)\/[a-z0-9_.]*"$/\1/p' "$f"); do
      case " $ok " in *" $inc "*) ;; *)
        echo "$f includes $inc/: runtime/$dir/ may include only $ok"
        status=1
        ;;
      esac
    done
    # runtime/ffi.h lists every module's FFI block (for the cdef and the C tests): a module
    # includes the headers of the modules it uses, never the whole surface.
    if grep -q '^#include "ffi.h"' "$f"; then
      echo "$f includes ffi.h: include the module headers it uses (ffi.h is the list for the cdef)"
      status=1
    fi
    if [ "$dir" != lua ] && grep -qE '^#include <(lua|lauxlib|lualib|luajit)\.h>' "$f"; then
      echo "$f includes lua.h: only runtime/lua/ may"
      status=1
    fi
  done
  if git grep -nE '\b(os\.execute|io\.popen)\b' -- 'lua/*.lua' 'stdlib/*.lua'; then
    echo "shell-outs above: use a C primitive (moonwatch.fs) instead"
    status=1
  fi
  [ $status = 0 ] && echo "layers: every runtime/ folder includes only what it may; no shell-outs"
  exit $status
  ;;
*)
  echo "usage: $0 clang-format|luacheck|layers|ffi-boundary" >&2
  exit 2
  ;;
esac
