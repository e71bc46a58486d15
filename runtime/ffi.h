/*
 * The FFI surface of the moonwatch runtime: every C function Lua calls through
 * the LuaJIT FFI, with the types it takes. Each module declares its own part in
 * its own header, between the lines
 *
 *   / * ffi.cdef begin * /   and   / * ffi.cdef end * /
 *
 * (without the spaces), next to its C API, and includes the headers whose
 * types its part uses. The headers below, in this order, are the whole
 * surface: at build time cmake/embed_cdef.cmake concatenates their marked
 * blocks (preprocessor lines stripped) into the one string handed to ffi.cdef
 * (mw_ffi_cdef), and compiles that string alone as C, so a block that uses a
 * type no earlier block declares fails the build. The C sources compile
 * against the same text in the module headers, so a signature drift fails the
 * build too. A header with a block that is not listed here fails the build.
 *
 * Rules (OpenResty's): no lua_State, never call back into Lua, return an int
 * status (0 ok, -1 error) and report errors through an out-parameter.
 *
 * This file only lists the headers: runtime/ code includes the module headers
 * it needs, never this one (tests/lint.sh layers); C tests may include it.
 */
#ifndef MW_FFI_H
#define MW_FFI_H
/* In cdef order (clang-format must not sort them): */
/* clang-format off */
#include "base/core.h"
#include "base/watchdog.h"
#include "base/fs.h"
#include "base/re2.h"
#include "base/regex.h"
#include "base/symtab.h"
#include "model/series.h"
#include "model/histogram.h"
#include "model/batch.h"
#include "model/logbatch.h"
#include "model/spanbatch.h"
#include "exposition/scrapecache.h"
#include "exposition/parse.h"
#include "exposition/registry.h"
#include "exposition/write.h"
#include "scrape/scrape.h"
#include "relabel/relabel.h"
#include "relabel/logcache.h"
#include "journal/journal.h"
#include "storage/wal.h"
#include "storage/logs_queue.h"
#include "remote/encode.h"
#include "remote/wal_reader.h"
#include "remote/metadata.h"
#include "exporters/node/node.h"
#include "exporters/process/self.h"
#include "exporters/process/group.h"
#include "loki/push.h"
#include "loki/reader.h"
#include "tail/tail.h"
#include "logproc/jsonx.h"
#include "pprof/profile.h"
#include "pprof/cpu.h"
#include "pyroscope/push.h"
#include "discovery/filesd.h"
#include "otlp/otlp.h"
/* clang-format on */
#endif
