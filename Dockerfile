# syntax=docker/dockerfile:1
#
# fanoutd container image.
#
#   docker build -t fanoutd .
#   docker run --rm -p 8080:8080 fanoutd
#   docker run --rm -p 8080:8080 -e FANOUT_AUTH_TOKENS=s3cret -e FANOUT_SHUTDOWN_GRACE_S=10 fanoutd
#   docker run --rm -p 8080:8080 -v "$PWD/my.json:/etc/fanoutd/fanoutd.json:ro" fanoutd
#   docker run --rm -i --network host --entrypoint fanout fanoutd run - < job.json   (the client)
#
# Stage 1 builds a release binary with the Swift standard library (and Foundation, if anything
# pulls it in) linked statically. Stage 2 is debian:bookworm-slim plus the libmicrohttpd runtime
# and CA certificates only. scripts/check-release-binary.sh runs the same build command on a
# bookworm machine and checks with ldd that the binary needs nothing the runtime stage lacks.

# ---------------------------------------------------------------------------------------------
# Build: the official Swift 6 image on Debian 12 (bookworm), plus the libmicrohttpd headers.
# 6.3 is the toolchain line that scripts/check-release-binary.sh builds with. The package
# compiles with -warnings-as-errors, so another compiler version could fail on new warnings.
FROM swift:6.3-bookworm AS build

# Debian stable only ships security and bug fixes, and a pinned version stops resolving when an
# update replaces it, so the packages follow bookworm rather than a pinned version.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libmicrohttpd-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /build

# Resolve dependencies first, so this layer is cached until Package.swift changes.
COPY Package.swift ./
RUN swift package resolve

# openapi.yaml is embedded in the binary (Sources/FanoutService/openapi.yaml links to it).
COPY openapi.yaml ./
COPY Sources ./Sources
COPY Tests ./Tests

# The same command scripts/check-release-binary.sh runs, then the same for the `fanout` client
# (one product per `swift build`), shipped beside the server: docker run --rm --network host
# --entrypoint fanout fanoutd get http://…
RUN --mount=type=cache,target=/build/.build \
    swift build -c release --static-swift-stdlib --product fanoutd \
    && swift build -c release --static-swift-stdlib --product fanout \
    && mkdir -p /staging/usr/local/bin \
    && install -m 0755 .build/release/fanoutd /staging/usr/local/bin/fanoutd \
    && install -m 0755 .build/release/fanout /staging/usr/local/bin/fanout \
    && install -m 0755 /usr/libexec/swift/linux/swift-backtrace-static /staging/usr/local/bin/swift-backtrace-static

# ---------------------------------------------------------------------------------------------
# Run: bookworm-slim with only the libmicrohttpd runtime and CA certificates (for https
# subtasks). libmicrohttpd12 brings libgnutls30 and its libraries through apt. There is no
# shell tool for health checks: `fanoutd healthcheck` does it.
FROM debian:bookworm-slim AS runtime

# See the note on pinning in the build stage.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libmicrohttpd12 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 fanoutd \
    && useradd --system --uid 10001 --gid fanoutd --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin fanoutd

COPY --from=build /staging/usr/local/bin/ /usr/local/bin/
# The default configuration, baked in. To override it:
#   - mount another file at this path (Kubernetes: a ConfigMap);
#   - or point FANOUT_CONFIG elsewhere;
#   - or set single keys with FANOUT_* variables or flags.
COPY config/fanoutd.json /etc/fanoutd/fanoutd.json

# Listen on all interfaces in a container, log JSON lines, and read the baked-in file.
# On a crash, print a symbolicated backtrace of every thread (no interactive debugger).
ENV FANOUT_CONFIG=/etc/fanoutd/fanoutd.json \
    FANOUT_HOST=0.0.0.0 \
    FANOUT_LOG_FORMAT=json \
    SWIFT_BACKTRACE=enable=yes,sanitize=yes,threads=all,images=all,interactive=no,swift-backtrace=/usr/local/bin/swift-backtrace-static

# A numeric user, so orchestrators can verify runAsNonRoot.
USER 10001:10001
WORKDIR /

# 8080: jobs; 8081: the admin listener (probes, /metrics).
EXPOSE 8080 8081

# SIGTERM starts the graceful drain: /readyz turns 503 at once, and new jobs get 503. Running jobs
# get up to shutdown.grace_s (25 s by default); whatever still runs after that ends as
# `cancelled` lines plus the end line. The process then exits 0. Give `docker stop` a timeout
# above that: docker stop -t 40.
STOPSIGNAL SIGTERM

HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/fanoutd", "healthcheck"]

ENTRYPOINT ["/usr/local/bin/fanoutd"]
CMD ["serve"]
