# syntax=docker/dockerfile:1
#
# hookbox: the host binary and the reference plugin, on a slim non-root runtime.
#
#   docker build -t hookbox:0.1.0 .
#   docker run --read-only -v hookbox-data:/var/lib/hookbox \
#     -v "$PWD/etc:/etc/hookbox:ro" -p 8443:8443 -p 9090:9090 hookbox:0.1.0
#
# Layout of the runtime image (deploy/README.md relies on it):
#   /usr/local/bin/hookbox                          the binary (ENTRYPOINT)
#   /usr/share/hookbox/plugins/login-conflict.wasm  the reference plugin, read-only
#   /etc/hookbox/hookbox.toml                       the config: mounted read-only, not shipped
#   /var/lib/hookbox                                data (embedded claim store): a volume
#   /var/cache/hookbox                              optional [engine] cache_dir parent: writable
# Runs as uid/gid 10001. Needs BuildKit (the cache mounts).

ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# ---------------------------------------------------------------------------
FROM ${RUST_IMAGE} AS build
WORKDIR /src
RUN rustup target add wasm32-wasip2
COPY . .
# target/ is a cache mount (it does not outlive the RUN), so the artefacts are
# copied out in the same step. The plugin is built first with exactly the
# settings host/build/guest.rs uses (same target dir, no DWARF), so the host's
# build script, which embeds the same plugin for `serve --dev`, finds it built.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    set -eux; \
    CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=debuginfo \
      cargo build --locked --release --target wasm32-wasip2 \
        --target-dir target/guests -p login-conflict; \
    cargo build --locked --release -p hookbox; \
    mkdir -p /out/plugins; \
    cp target/release/hookbox /out/hookbox; \
    cp target/guests/wasm32-wasip2/release/login_conflict.wasm /out/plugins/login-conflict.wasm; \
    /out/hookbox check /out/plugins/login-conflict.wasm

# ---------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE} AS runtime
# ca-certificates: outbound TLS (OAuth issuers' keys, a TLS Redis). No curl or
# shell tools beyond the base image's: see HEALTHCHECK below.
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates; \
    rm -rf /var/lib/apt/lists/*; \
    groupadd --system --gid 10001 hookbox; \
    useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /var/lib/hookbox --shell /usr/sbin/nologin hookbox; \
    install -d -m 0755 -o root -g root /etc/hookbox /usr/share/hookbox/plugins; \
    install -d -m 0700 -o hookbox -g hookbox /var/lib/hookbox /var/cache/hookbox

COPY --from=build --chown=root:root --chmod=0755 /out/hookbox /usr/local/bin/hookbox
COPY --from=build --chown=root:root --chmod=0644 /out/plugins/ /usr/share/hookbox/plugins/

# The binary and the plugins belong to root and are read-only for hookbox;
# only the data directory is its own. The config is not in the image: mount
# it (read-only) at /etc/hookbox, with the TLS files and tenant secrets.
USER 10001:10001
WORKDIR /var/lib/hookbox
VOLUME ["/var/lib/hookbox"]

# 8443: the HTTPS listener ([server] listen = "0.0.0.0:8443").
# 9090: the plain-HTTP ops listener ([server] ops_listen = "0.0.0.0:9090"):
#       /healthz, /readyz, /metrics.
EXPOSE 8443 9090

# No HEALTHCHECK: the slim base has no curl/wget, and adding one only for
# this would grow the image and its attack surface. Orchestrators probe the
# ops listener themselves (deploy/kubernetes: readinessProbe /readyz,
# livenessProbe /healthz); under plain Docker, probe from outside, e.g.
# `curl -fsS http://HOST:9090/readyz`.

# SIGTERM starts the drain ([server] shutdown_delay, then shutdown_grace);
# docker stop's default 10 s is shorter than the default drain: use
# `docker stop -t 30` or `--stop-timeout 30`.
STOPSIGNAL SIGTERM
ENTRYPOINT ["hookbox"]
CMD ["serve", "--config", "/etc/hookbox/hookbox.toml"]
