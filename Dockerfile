# codex-http-server as one compiled executable plus the codex binary, on a minimal root
# filesystem taken from Debian bookworm (FROM scratch; no package manager in the image).
#
#   docker build -t codex-http-server .
#   docker run --init --stop-timeout 40 -p 127.0.0.1:8081:8081 -v codex-home:/home/codex/.codex \
#     -e OPENAI_API_KEY -e CODEX_SERVER_AUTH_TOKEN codex-http-server
#
# The default mode runs the agent with full access and no approvals: inside the container,
# that is full access to the container and to whatever you mount into it. The server listens on
# 0.0.0.0 in here, so set CODEX_SERVER_AUTH_TOKEN (clients send it as a bearer token).

# ---------------------------------------------------------------------------------------------
# Build: typecheck, compile the server to a single executable, and stage codex from node_modules.
# ---------------------------------------------------------------------------------------------
FROM oven/bun:1.4.5 AS build
WORKDIR /app

# Manifests first, so that the dependency layer is reused when only the sources change.
COPY package.json bun.lock bunfig.toml tsconfig.json ./
# --frozen-lockfile: the image gets exactly the versions in bun.lock (codex included), or fails.
RUN bun install --frozen-lockfile

COPY src ./src
COPY scripts ./scripts
# tsconfig also includes test/ and bench/, which are not copied: this checks the shipped code only.
# typecheck first writes the app-server protocol types from the installed codex (generated/).
RUN bun run typecheck
# -> dist/sse-http-server. A compiled executable cannot use the SDK's codex inside node_modules,
# so it looks for `codex` beside itself (/usr/local/bin/codex below), then on PATH.
RUN bun run build

# The codex binary comes from the platform package that bun installed for this build's
# architecture. The package and target triple follow `uname -m` (which is the target
# architecture under `docker buildx --platform`); both can be overridden, e.g.
#   --build-arg CODEX_PACKAGE=codex-linux-arm64 --build-arg CODEX_TRIPLE=aarch64-unknown-linux-musl
ARG CODEX_PACKAGE=""
ARG CODEX_TRIPLE=""
# Keeps codex's own package layout (bin/codex, codex-package.json, codex-path/rg and
# codex-resources/bwrap), because codex looks for those files relative to its real location.
# Left out: codex-resources/voice and bin/codex-code-mode-host (about 125 MB), which a server
# does not use. `codex --version` fails the build here if the binary does not run on this platform.
RUN set -eu; \
    case "$(uname -m)" in \
      x86_64)  default_package=codex-linux-x64;   default_triple=x86_64-unknown-linux-musl ;; \
      aarch64) default_package=codex-linux-arm64; default_triple=aarch64-unknown-linux-musl ;; \
      *)       default_package=unknown;           default_triple=unknown ;; \
    esac; \
    package="${CODEX_PACKAGE:-$default_package}"; \
    triple="${CODEX_TRIPLE:-$default_triple}"; \
    vendor="node_modules/@openai/${package}/vendor/${triple}"; \
    test -x "$vendor/bin/codex" || { echo "no codex at $vendor/bin/codex; set CODEX_PACKAGE and CODEX_TRIPLE" >&2; exit 1; }; \
    mkdir -p /opt/codex/bin /opt/codex/codex-resources; \
    cp "$vendor/bin/codex" /opt/codex/bin/codex; \
    cp "$vendor/codex-package.json" /opt/codex/; \
    cp -R "$vendor/codex-path" /opt/codex/codex-path; \
    if [ -e "$vendor/codex-resources/bwrap" ]; then cp "$vendor/codex-resources/bwrap" /opt/codex/codex-resources/; fi; \
    /opt/codex/bin/codex --version

# ---------------------------------------------------------------------------------------------
# Root filesystem: on Debian, install git and the CA certificates, then copy out only what the
# runtime needs (scripts/image-rootfs.sh says what and why): glibc and the shared libraries of
# the programs kept, bash, sh, coreutils, grep, sed, awk, find, diff, tar, gzip, git, the CA
# bundle, the users, a system gitconfig. Debian slim itself (apt, dpkg, perl, ...) stays behind.
# ---------------------------------------------------------------------------------------------
FROM debian:bookworm-slim AS rootfs
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates git \
 && rm -rf /var/lib/apt/lists/*
COPY scripts/image-rootfs.sh /usr/local/sbin/image-rootfs.sh
# The compiled server is given so that its shared libraries (glibc) are part of the closure.
COPY --from=build /app/dist/sse-http-server /tmp/sse-http-server
RUN bash /usr/local/sbin/image-rootfs.sh /rootfs /tmp/sse-http-server

# ---------------------------------------------------------------------------------------------
# Runtime: nothing but that root filesystem, codex's package files and the compiled server.
# No Bun, no node_modules (the executable embeds the Bun runtime), no package manager.
# ---------------------------------------------------------------------------------------------
FROM scratch

# Copying between stages keeps owners and modes: /home/codex, CODEX_HOME and /workspace stay
# owned by uid 1000, /tmp stays 1777.
COPY --from=rootfs /rootfs/ /
# codex's package layout is kept because codex resolves its files from its real path;
# /usr/local/bin/codex (where the server looks, beside itself) and /usr/local/bin/rg are
# symlinks into it, made by image-rootfs.sh.
COPY --from=build /opt/codex /usr/local/lib/codex
COPY --from=build /app/dist/sse-http-server /usr/local/bin/sse-http-server

# codex reads config.toml and auth.json (`codex login`) from CODEX_HOME, and keeps its sessions
# there: a volume, so that they survive the container; a new named volume starts out with the
# image's directory, owned by codex. There is no /etc/profile, so the agent's `bash -lc`
# commands keep this PATH.
ENV PATH=/usr/local/lib/codex/codex-path:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/home/codex \
    CODEX_HOME=/home/codex/.codex
VOLUME /home/codex/.codex

# A turn without `work_dir` runs in the server's working directory: mount the project here.
WORKDIR /workspace
# Numeric, so that Kubernetes' runAsNonRoot can check it; the user is codex in /etc/passwd.
USER 1000:1000
EXPOSE 8081

# GET /health (which needs no token) at the address and port the server listens on, read from
# its listening socket, so that it follows whatever --addr the container is started with.
COPY scripts/healthcheck.sh /usr/local/lib/codex-http-server/healthcheck.sh
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["bash", "/usr/local/lib/codex-http-server/healthcheck.sh"]

# Exec form, so that the server itself receives SIGTERM from `docker stop`: it starts no new turns,
# lets running ones finish for up to --shutdown-timeout (30 s), cancels the rest and exits 0.
# Docker kills after 10 s unless told otherwise: run with --stop-timeout 40 to give turns that time.
# Run with --init so that processes the agent's commands leave behind are reaped.
ENTRYPOINT ["/usr/local/bin/sse-http-server"]
CMD ["--addr", "0.0.0.0:8081"]
