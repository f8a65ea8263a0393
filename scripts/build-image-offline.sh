#!/usr/bin/env bash
# Builds the Dockerfile with buildah on a machine that cannot reach Docker Hub: one that reaches
# only the npm registry and Debian's mirrors, and runs no Docker engine.
# The Dockerfile stays standard (`docker build .` on a normal machine); this script makes its two
# base images locally, under the exact names the Dockerfile uses, and then builds it with
# `buildah bud --pull=never`, so nothing is pulled:
#   docker.io/library/debian:bookworm-slim  debootstrap --variant=minbase bookworm from
#                                           deb.debian.org, trimmed the way the official slim
#                                           image is (no docs, man pages, locales, apt lists);
#   docker.io/oven/bun:<version>            that root filesystem plus bun from npm
#                                           (@oven/bun-linux-x64-baseline, the build the official
#                                           image uses on amd64) at /usr/local/bin/bun, bunx, the
#                                           user bun (1000) and WORKDIR /home/bun/app, as there.
# They are stand-ins for the official images, not copies; the runtime stage is FROM scratch, so
# only Debian's packages (same suite) reach the final image.
#
# Needs root (debootstrap, buildah), and from Debian: buildah, debootstrap, npm (and, for
# scripts/check-image.sh, podman and runc). Ends with scripts/image-size-gate.sh: it fails when
# the image holds more than 40 MB beyond codex and the server.
# Usage: sudo scripts/build-image-offline.sh [IMAGE]      (default localhost/codex-http-server)
# Environment:
#   REBUILD_BASES=1      make the base images again even if they exist
#   DEBIAN_MIRROR        default http://deb.debian.org/debian
#   WORK_DIR             scratch space for the root filesystem, default /var/tmp/codex-http-server-image
#   HOST_CA_BUNDLE       extra CA certificates for bun in the build stage, default $NODE_EXTRA_CA_CERTS
#                        (see the bun image below); empty for none
#   STORAGE_DRIVER       buildah's storage driver, default buildah's own (overlay); e.g. vfs
#   BUILDAH_ISOLATION    default chroot: RUN steps share the host's network (npm, deb.debian.org)
#                        and need no user namespaces or cgroups; `oci` (crun) works too where allowed
#   IMAGE_EXTRA_LIMIT_MB the size gate: MB (10^6 bytes) the image may hold beyond codex and the server, default 40
set -euo pipefail

cd "$(dirname "$0")/.."
image="${1:-localhost/codex-http-server:latest}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
work="${WORK_DIR:-/var/tmp/codex-http-server-image}"
host_ca="${HOST_CA_BUNDLE-${NODE_EXTRA_CA_CERTS:-}}"
export BUILDAH_ISOLATION="${BUILDAH_ISOLATION:-chroot}"
# buildah's default storage driver (overlay) works as root on most hosts; STORAGE_DRIVER=vfs
# selects vfs where overlay mounts are not allowed (it stores every layer in full). podman must
# then be given the same driver to see the image.
buildah() {
  if [ -n "${STORAGE_DRIVER:-}" ]; then
    command buildah --storage-driver "$STORAGE_DRIVER" "$@"
  else
    command buildah "$@"
  fi
}

# The base image names, read from the Dockerfile so that the two cannot drift apart.
bun_ref="$(sed -n 's/^FROM \(oven\/bun:[^ ]*\) AS build$/\1/p' Dockerfile)"
debian_ref="$(sed -n 's/^FROM \(debian:[^ ]*\) AS rootfs$/\1/p' Dockerfile)"
[ -n "$bun_ref" ] && [ -n "$debian_ref" ] || { echo "cannot find the FROM lines in Dockerfile" >&2; exit 1; }
bun_version="${bun_ref#oven/bun:}"
suite="${debian_ref#debian:}"
suite="${suite%-slim}"
bun_image="docker.io/$bun_ref"
debian_image="docker.io/library/$debian_ref"

log() { printf '\n=== %s\n' "$*"; }
have_image() { [ "${REBUILD_BASES:-0}" != 1 ] && buildah inspect --type image "$1" >/dev/null 2>&1; }

case "$(uname -m)" in
  x86_64)  deb_arch=amd64; bun_package="@oven/bun-linux-x64-baseline" ;;
  aarch64) deb_arch=arm64; bun_package="@oven/bun-linux-aarch64" ;;
  *) echo "unsupported architecture $(uname -m)" >&2; exit 1 ;;
esac

mkdir -p "$work"

# --- debian:<suite>-slim -----------------------------------------------------------------------
if have_image "$debian_image"; then
  log "$debian_image exists (REBUILD_BASES=1 makes it again)"
else
  log "debootstrap --variant=minbase $suite from $mirror"
  rootfs="$work/debian-rootfs"
  rm -rf "$rootfs"
  debootstrap --variant=minbase --arch="$deb_arch" "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log" >&2; exit 1; }

  # What the official slim image does (debuerreotype's slimify and its apt settings): dpkg
  # leaves out docs, man pages and translations from now on, apt keeps no caches; and the
  # files already installed that those rules exclude go too.
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/man/*
EOF
  cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  printf 'Acquire::Languages "none";\n' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"
  printf 'APT::AutoRemove::SuggestsImportant "false";\n' >"$rootfs/etc/apt/apt.conf.d/docker-autoremove-suggests"
  find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$rootfs/usr/share/man/"* "$rootfs/usr/share/info/"* "$rootfs/usr/share/groff/"* \
         "$rootfs/usr/share/lintian/"* "$rootfs/usr/share/linda/"*
  find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
  # The official image's sources: the suite, its updates and its security updates.
  rm -f "$rootfs/etc/apt/sources.list"
  cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: ${mirror}
Suites: ${suite} ${suite}-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirror%/debian}/debian-security
Suites: ${suite}-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  # The official image is rebuilt with each point release and security update; so is this one.
  { chroot "$rootfs" apt-get update \
      && DEBIAN_FRONTEND=noninteractive chroot "$rootfs" apt-get upgrade -y; } >"$work/apt-upgrade.log" 2>&1 \
    || { tail -20 "$work/apt-upgrade.log" >&2; exit 1; }
  grep -E '^[0-9]+ upgraded' "$work/apt-upgrade.log" || true
  rm -rf "$rootfs/var/cache/apt/"*.bin "$rootfs/var/cache/apt/archives/"*.deb "$rootfs/var/lib/apt/lists/"*
  # The build host's name and resolver do not belong in an image; the runtime supplies both.
  : >"$rootfs/etc/resolv.conf"
  rm -f "$rootfs/etc/hostname"

  tar -C "$rootfs" --numeric-owner -cf "$work/debian-rootfs.tar" .
  ctr="$(buildah from scratch)"
  buildah add "$ctr" "$work/debian-rootfs.tar" / >/dev/null
  buildah config --os linux --arch "$deb_arch" \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --cmd bash "$ctr"
  buildah commit --rm --format docker "$ctr" "$debian_image"
  rm -rf "$rootfs" "$work/debian-rootfs.tar"
fi

# --- oven/bun:<version> ------------------------------------------------------------------------
if have_image "$bun_image"; then
  log "$bun_image exists (REBUILD_BASES=1 makes it again)"
else
  log "$bun_image from $debian_image and $bun_package@$bun_version (npm)"
  rm -rf "$work/bun" && mkdir -p "$work/bun"
  (cd "$work/bun" && npm pack --silent "$bun_package@$bun_version" >/dev/null && tar xzf ./*.tgz)
  ctr="$(buildah from --pull=never "$debian_image")"
  buildah copy --chmod 0755 "$ctr" "$work/bun/package/bin/bun" /usr/local/bin/bun >/dev/null
  # Where npm is reached through a TLS-inspecting proxy, the host hands its CA to Node and Bun in
  # NODE_EXTRA_CA_CERTS. The stand-in gets the same file and variable, so that `bun install` in
  # the build stage works there too; the shipped image is FROM scratch and gets neither (its CA
  # bundle is Debian's ca-certificates, from the rootfs stage).
  extra_env=()
  if [ -n "$host_ca" ]; then
    buildah copy "$ctr" "$host_ca" /usr/local/share/host-extra-ca.crt >/dev/null
    extra_env=(--env NODE_EXTRA_CA_CERTS=/usr/local/share/host-extra-ca.crt)
  fi
  buildah run "$ctr" -- sh -c 'groupadd bun --gid 1000 \
    && useradd bun --uid 1000 --gid bun --shell /bin/sh --create-home \
    && ln -s /usr/local/bin/bun /usr/local/bin/bunx \
    && mkdir -p /home/bun/app && chown bun:bun /home/bun/app \
    && bun --version'
  buildah config --env BUN_RUNTIME_TRANSPILER_CACHE_PATH=0 "${extra_env[@]}" --workingdir /home/bun/app \
    --cmd /usr/local/bin/bun "$ctr"
  buildah commit --rm --format docker "$ctr" "$bun_image"
  rm -rf "$work/bun"
fi

# --- the image ---------------------------------------------------------------------------------
# --format docker: the OCI image format has no HEALTHCHECK, and buildah drops it there.
# --layers: reuse unchanged steps (the bun install, the apt-get install) on the next build.
log "buildah bud -t $image (isolation $BUILDAH_ISOLATION, storage $(buildah info --format '{{.store.GraphDriverName}}'))"
buildah bud --pull=never --layers --format docker --isolation "$BUILDAH_ISOLATION" -t "$image" -f Dockerfile .

# --- sizes -------------------------------------------------------------------------------------
# What the image holds beyond codex's binary and the server must stay within 40 MB
# (IMAGE_EXTRA_LIMIT_MB): scripts/image-size-gate.sh fails the build past it. The compressed size
# is the image pushed to an OCI layout with gzip-compressed layers, as a registry would store it.
log "sizes"
ctr="$(buildah from --pull=never "$image")"
mnt="$(buildah mount "$ctr")"
total=$(du -sb "$mnt" | cut -f1)
codex=$(stat -c %s "$mnt/usr/local/lib/codex/bin/codex")
server=$(stat -c %s "$mnt/usr/local/bin/sse-http-server")
buildah umount "$ctr" >/dev/null
buildah rm "$ctr" >/dev/null
rm -rf "$work/oci"
buildah push --quiet --format oci --compression-format gzip "$image" "oci:$work/oci" >/dev/null
compressed=$(du -sb "$work/oci/blobs" | cut -f1)
rm -rf "$work/oci"
buildah images "$image"
scripts/image-size-gate.sh "$total" "$codex" "$server" "$compressed"
