# moonwatch's container image: two stages on Debian 12 (bookworm).
#
#   podman build -t moonwatch .            (docker build works the same)
#   podman run -v ./pipeline.lua:/etc/moonwatch/pipeline.lua:ro -p 12345:12345 moonwatch
#
# BASE is any Debian 12 image: debian:12-slim by default, or a local one (the test imports a
# root fs made with `mmdebstrap --variant=minbase bookworm base.tar`; tests/e2e/container_spec.lua).
# Inside the container moonwatch listens on 0.0.0.0:12345 (the CMD's flag): a container's
# loopback is reachable from nowhere else. Outside containers the default stays 127.0.0.1.
ARG BASE=docker.io/library/debian:12-slim

# ---- build: compilers and -dev packages, only the moonwatch binary is compiled ----
# (the -dev packages of cmake/deps.cmake, without the tests' tools; libyaml is discovery.file's,
# libunwind /debug/pprof's: a library added there goes here and in the final stage too)
FROM ${BASE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      gcc libc6-dev make cmake pkg-config protobuf-c-compiler lua-cjson \
      libluajit-5.1-dev libev-dev libcurl4-openssl-dev libssl-dev libsnappy-dev libprotobuf-c-dev \
      libpcre2-dev libmicrohttpd-dev libxxhash-dev libdeflate-dev libsystemd-dev zlib1g-dev libbz2-dev \
      libyaml-dev libunwind-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# C first: a change to Lua files alone does not compile anything again (layer cache).
COPY CMakeLists.txt ./
COPY cmake cmake
COPY runtime runtime
ARG JOBS=2
# moonwatch_build_info's revision: --build-arg REVISION=$(git rev-parse --short=12 HEAD)
ARG REVISION=unknown
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DMW_TESTS=OFF -DCMAKE_INSTALL_PREFIX=/usr/local \
      -DMW_REVISION="$REVISION" \
 && cmake --build /build -j"$JOBS" --target moonwatch
COPY lua lua
COPY stdlib stdlib
RUN DESTDIR=/out cmake --install /build

# ---- runtime: the shared libraries the binary links, no compiler ----
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      libluajit-5.1-2 lua-cjson libev4 libcurl4 libssl3 libsnappy1v5 libprotobuf-c1 libpcre2-8-0 \
      libmicrohttpd12 libxxhash0 libdeflate0 libsystemd0 zlib1g libbz2-1.0 libyaml-0-2 libunwind8 \
      ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 moonwatch \
 && useradd --uid 10001 --gid 10001 --home-dir /var/lib/moonwatch --no-create-home --no-log-init \
      --shell /usr/sbin/nologin moonwatch \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/moonwatch \
 && install -d -m 0755 /etc/moonwatch /etc/moonwatch/components
COPY --from=build /out/ /
# The default pipeline (moonwatch watching itself, into files under the storage volume);
# mount yours over it, or a directory over /etc/moonwatch.
COPY examples/self-monitoring.lua /etc/moonwatch/pipeline.lua
# Custom components (mycorp/filter.lua for `mycorp.filter "x" {}`) go in /etc/moonwatch/components.
ENV MOONWATCH_COMPONENT_PATH=/etc/moonwatch/components
USER 10001:10001
WORKDIR /var/lib/moonwatch
VOLUME /var/lib/moonwatch
EXPOSE 12345
# Exec form: moonwatch is PID 1 and gets SIGTERM itself (it stops its components, exits 0).
ENTRYPOINT ["/usr/local/bin/moonwatch"]
CMD ["run", "--server.http.listen-addr=0.0.0.0:12345", "--storage.path=/var/lib/moonwatch", \
     "/etc/moonwatch/pipeline.lua"]
