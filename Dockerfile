# recd container image: build stage compiles the release binaries on Debian 12; runtime stage has only their libraries.
#
#   docker build -t recd .
#   docker run -p 8080:8080 -v "$PWD/demo/registry:/var/lib/recd/registry" recd --model demo
#
# Settings: /etc/recd/recd.json (config/recd.json with listen 0.0.0.0:8080 and paths under /var/lib/recd), read through
# RECD_CONFIG; RECD_<KEY> variables and --key flags override it, as everywhere else.

FROM debian:12-slim AS build
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        build-essential cmake pkg-config jq \
        libh2o-evloop-dev libssl-dev libjansson-dev libhiredis-dev librdkafka-dev libopenblas-dev liblapacke-dev \
        libjwt-dev libcmocka-dev zlib1g-dev libxml2-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRECD_WERROR=OFF \
    && cmake --build build -j"$(nproc)" \
    && mkdir -p /out/bin \
    && find build -type f -perm -u+x -name 'recd*' -not -path '*/CMakeFiles/*' -exec cp {} /out/bin/ \; \
    && test -x /out/bin/recd \
    && jq '.listen = "0.0.0.0:8080" | .registry = "/var/lib/recd/registry" | .events_path = "/var/lib/recd/data/events.jsonl"' \
        config/recd.json > /out/recd.json

FROM debian:12-slim
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libh2o-evloop0.13 libjansson4 libopenblas0-pthread liblapacke libssl3 libxml2 zlib1g \
        libhiredis0.14 librdkafka1 libjwt0 curl ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/recd --no-create-home recd \
    && mkdir -p /var/lib/recd/registry /var/lib/recd/data /etc/recd \
    && chown -R recd:recd /var/lib/recd
COPY --from=build /out/bin/ /usr/local/bin/
COPY --from=build /out/recd.json /etc/recd/recd.json
# Fail the image build, not the first start, when a shared library is missing.
RUN for b in /usr/local/bin/recd*; do if ldd "$b" | grep -q 'not found'; then ldd "$b"; exit 1; fi; done
ENV RECD_CONFIG=/etc/recd/recd.json \
    OPENBLAS_NUM_THREADS=1
USER recd:recd
WORKDIR /var/lib/recd
VOLUME ["/var/lib/recd/registry", "/var/lib/recd/data"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD curl -fsS -o /dev/null http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["recd"]
