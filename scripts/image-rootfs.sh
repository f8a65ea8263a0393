#!/bin/bash
# Assembles the runtime image's whole root filesystem in one directory (DIR, e.g. /rootfs).
#
# It runs inside the Dockerfile's Debian stage, which has the packages installed; the runtime
# stage is `FROM scratch` plus this directory, the codex package and the compiled server. Debian
# slim alone is about 75 MB, mostly apt, dpkg, perl-base and shared files that the server and
# the agent never use; this keeps only what they run, to stay within 40 MB on top of codex's
# binary and the server:
#   - glibc and the shared libraries of everything copied (the closure that ldd reports), for
#     the compiled server (Bun links glibc) and the tools below; codex, rg and bwrap are static;
#   - bash (the agent's commands run as `bash -lc`; the health check) and dash as /bin/sh;
#   - the tools an agent reaches for in a checkout: coreutils, grep, sed, mawk as awk,
#     findutils, diffutils, tar and gzip;
#   - git for local repositories: the git binary (its subcommands are built in) and the
#     symlinks to it by which some are run (git-upload-pack for a local clone), the shell
#     scripts in git-core that some subcommands still are (submodule, bisect, the octopus and
#     resolve merges, mergetool...) with git-sh-i18n--envsubst, which their messages use, and
#     the `git init` templates. Not perl (only the legacy `add -i` script needs it), and not
#     git-remote-http: `git clone/fetch https://...` would add about 19 MB of curl, gnutls,
#     kerberos, ldap and OpenSSL libraries;
#   - glibc's C.UTF-8 locale (codex runs commands with LC_ALL=C.UTF-8), the CA bundle, a system
#     gitconfig, /etc/passwd and /etc/group with the user codex (uid 1000), its home,
#     CODEX_HOME and /workspace owned by it, and a 1777 /tmp.
# No docs, man pages, other locales, package database or package manager.
#
# Usage: image-rootfs.sh DIR [EXECUTABLE...]
#   EXECUTABLEs are not copied, but their shared libraries are (the compiled server).
set -euo pipefail

root="$1"
shift
mkdir -p "$root"

# Debian's merged /usr: /bin, /sbin, /lib (and /lib64, where the loader's path goes through
# it) are symlinks into /usr, so that both spellings of every path work, as on Debian.
for dir in bin sbin lib lib64; do
  if [ -L "/$dir" ]; then
    mkdir -p "$root/usr/$dir"
    ln -sfn "usr/$dir" "$root/$dir"
  fi
done

# Copies FILE to the same place under $root, its directory resolved (so /bin/cat lands in
# /usr/bin/cat) and symlinks followed, keeping the name it was asked for (libc.so.6, not the
# versioned file behind it).
copy_file() {
  local src="$1" dir
  dir="$(readlink -f "$(dirname "$src")")"
  mkdir -p "$root$dir"
  cp -L --preserve=mode,timestamps "$src" "$root$dir/$(basename "$src")"
}

is_elf() {
  [ "$(head -c 4 "$1" | tail -c 3)" = "ELF" ]
}

elves=()
copy_program() {
  local src="$1" target
  # A symlink to a program in the same directory (rbash -> bash) stays a symlink, not a copy.
  if [ -L "$src" ]; then
    target="$(readlink -f "$src")"
    if [ "$(dirname "$target")" = "$(readlink -f "$(dirname "$src")")" ]; then
      copy_program "$target"
      ln -sfn "$(basename "$target")" "$root$(dirname "$target")/$(basename "$src")"
      return
    fi
  fi
  copy_file "$src"
  if is_elf "$src"; then
    elves+=("$src")
  fi
}

# The executables a package installs (in bin/ or sbin/ directories).
package_programs() {
  dpkg -L "$@" | grep -E '^(/usr)?/s?bin/[^/]+$' | while read -r path; do
    if [ -f "$path" ] || [ -L "$path" ]; then echo "$path"; fi
  done | sort -u
}

for program in $(package_programs bash dash coreutils grep sed findutils diffutils tar gzip); do
  case "$program" in
    */bashbug | */bin/sh) continue ;;   # bashbug: a bug-report script; sh: linked below
  esac
  copy_program "$program"
done
copy_program /usr/bin/mawk
ln -sfn dash "$root/usr/bin/sh"
ln -sfn mawk "$root/usr/bin/awk"

# git: the binary; in git-core, the dashed names of the built-in commands (symlinks to git,
# which some are run by: `git clone /local/repo` runs git-upload-pack) with git-core/git itself
# a symlink to /usr/bin/git instead of Debian's second 3.7 MB copy; and the shell scripts. Not
# the other ELF helpers (http, daemon, imap-send, ...) nor the perl script.
copy_program /usr/bin/git
mkdir -p "$root/usr/lib/git-core"
ln -sfn ../../bin/git "$root/usr/lib/git-core/git"
for f in /usr/lib/git-core/*; do
  if [ -L "$f" ]; then
    if [ "$(readlink "$f")" = git ]; then cp -P "$f" "$root/usr/lib/git-core/"; fi
  elif [ -f "$f" ] && ! is_elf "$f" && ! head -n 1 "$f" | grep -q perl; then
    copy_program "$f"
  fi
done
copy_program /usr/lib/git-core/git-sh-i18n--envsubst
cp -a /usr/lib/git-core/mergetools "$root/usr/lib/git-core/"
mkdir -p "$root/usr/share/git-core"
cp -a /usr/share/git-core/templates "$root/usr/share/git-core/"

# The shared libraries of every ELF copied and of the EXECUTABLEs given, and the dynamic
# loader itself (ldd lists it by the path the executables ask for, e.g.
# /lib64/ld-linux-x86-64.so.2, which lands in /usr/lib64).
closure="$(ldd "${elves[@]}" "$@" 2>&1 || true)"   # ldd fails on static executables (rg)
if grep 'not found' <<<"$closure" >&2; then
  echo "image-rootfs.sh: a shared library is missing" >&2
  exit 1
fi
for lib in $(grep -oE '/[^ ]+\.so[^ :]*' <<<"$closure" | sort -u); do
  copy_file "$lib"
done
# The loader's cache for exactly these libraries.
mkdir -p "$root/etc"
: > "$root/etc/ld.so.conf"
ldconfig -r "$root"

# glibc's C.UTF-8 locale (about 400 kB): codex runs the agent's commands with LC_ALL=C.UTF-8,
# and without it bash prefixes every command's output with "setlocale: LC_ALL: cannot change
# locale (C.UTF-8)".
mkdir -p "$root/usr/lib/locale"
cp -a /usr/lib/locale/C.utf8 "$root/usr/lib/locale/"

# TLS roots for codex (the OpenAI API) and git.
mkdir -p "$root/etc/ssl/certs"
cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"

# Users and name lookup. uid/gid 1000 is fixed, so a mounted workspace or CODEX_HOME can be
# given to it predictably (chown 1000:1000 on the host).
cat > "$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/bash
codex:x:1000:1000:codex:/home/codex:/bin/bash
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
EOF
cat > "$root/etc/group" <<'EOF'
root:x:0:
codex:x:1000:
nogroup:x:65534:
EOF
printf 'passwd: files\ngroup: files\nhosts: files dns\n' > "$root/etc/nsswitch.conf"

# The workspace is usually a bind mount owned by someone else, which git refuses to work in
# ("dubious ownership") unless it is marked safe.
git config --file "$root/etc/gitconfig" --add safe.directory '*'

mkdir -p "$root/root" "$root/home/codex/.codex" "$root/workspace" "$root/tmp" "$root/var/tmp"
chmod 700 "$root/root"
chmod 1777 "$root/tmp" "$root/var/tmp"
chown -R 1000:1000 "$root/home/codex" "$root/workspace"

# codex and rg on PATH. /usr/local/bin/codex is where the server finds codex (beside its own
# executable); it is a symlink so that codex, which resolves its real path, still finds its
# package files in /usr/local/lib/codex (copied in by the Dockerfile).
mkdir -p "$root/usr/local/bin"
ln -sfn /usr/local/lib/codex/bin/codex "$root/usr/local/bin/codex"
ln -sfn /usr/local/lib/codex/codex-path/rg "$root/usr/local/bin/rg"

echo "runtime root filesystem in $root: $(du -sh "$root" | cut -f1)"
