# syntax=docker/dockerfile:1.7
#
#   docker build -t sitoo-voyado-proxy .
#   docker run --rm -p 8080:8080 sitoo-voyado-proxy demo          # the README's demo, on :8080
#   docker run --rm -p 8080:8080 -p 9090:9090 --read-only \
#     -v "$PWD/config.toml:/etc/sitoo-voyado-proxy/config.toml:ro" \
#     -v "$PWD/mappings:/etc/sitoo-voyado-proxy/mappings:ro" \
#     -e CRM_API_KEY_... -e VOYADO_API_KEY_... sitoo-voyado-proxy   # serve --config (the default)
#
# Built with the simulator but without the load generator: the demo (Voyado simulator) stays in
# the image, so `docker run IMAGE demo` works (the simulator only runs when asked for); `bench`,
# its charts and progress bar are a load-tester's tool, run from a clone, not in production.

# The toolchain pinned in rust-toolchain.toml (tests/deploy.rs checks the two agree).
ARG RUST_VERSION=1.95.0

FROM rust:${RUST_VERSION}-slim-bookworm AS build
ARG RUST_VERSION
# rust-toolchain.toml names this same toolchain; pinning it here keeps rustup from fetching the
# file's extra components (rustfmt, clippy), which a release build does not need.
ENV RUSTUP_TOOLCHAIN=${RUST_VERSION} \
    CARGO_TERM_COLOR=never
WORKDIR /src
COPY . .
# Pure Rust down to TLS (rustls + ring): no OpenSSL or cmake in the builder. The cache mounts
# keep the registry and target/ between builds; the binary is copied out of the cached target/.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    rustc --version \
    && cargo build --release --locked --bin sitoo-voyado-proxy \
        --no-default-features --features simulator \
    && install -D -m 0755 target/release/sitoo-voyado-proxy /out/sitoo-voyado-proxy

# Same Debian release as the builder, so the glibc the binary links against is there.
FROM debian:bookworm-slim AS runtime
# ca-certificates: the Voyado client verifies TLS against the system roots. curl: HEALTHCHECK
# (the binary has no health subcommand). Debian's security updates move the exact versions, so
# they are not pinned; the base image tag pins the release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 svp \
    && useradd --system --uid 10001 --gid svp --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin svp
COPY --from=build /out/sitoo-voyado-proxy /usr/local/bin/sitoo-voyado-proxy
# The shipped mappings, for a config with `mappings = "mappings"` next to it; mount your own
# directory over it (a named volume starts as a copy of these).
COPY mappings/ /etc/sitoo-voyado-proxy/mappings/
# `demo` on its own would listen on 127.0.0.1:8080, which `docker run -p` cannot reach from
# outside the container: this wrapper adds `--listen 0.0.0.0:8080` when no --listen is given.
# Everything else goes to the binary unchanged (exec: SIGTERM reaches the proxy, which drains).
COPY --chmod=0755 <<'EOF' /usr/local/bin/docker-entrypoint
#!/bin/sh
set -eu
if [ "${1:-}" = demo ]; then
    case " $* " in
        *" --listen "*) ;;
        *) set -- "$@" --listen 0.0.0.0:8080 ;;
    esac
fi
exec /usr/local/bin/sitoo-voyado-proxy "$@"
EOF

USER 10001:10001
WORKDIR /etc/sitoo-voyado-proxy
VOLUME ["/etc/sitoo-voyado-proxy/mappings"]
# 8080: the SPI (and /healthz, /readyz, /metrics); 9090: admin_listen, if the config sets it.
EXPOSE 8080 9090
ENV RUST_LOG=info
# Liveness only (Kubernetes ignores this and uses the Deployment's probes). /healthz answers on
# the SPI port whatever admin_listen says.
HEALTHCHECK --interval=15s --timeout=3s --start-period=5s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8080/healthz"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/docker-entrypoint"]
CMD ["serve", "--config", "/etc/sitoo-voyado-proxy/config.toml"]
