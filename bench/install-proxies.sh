#!/usr/bin/env bash
# Installs Debian's nginx and HAProxy for `make bench` when they are
# missing: `go run ./bench` runs the gRPC and HTTP/1.1 paths through them
# beside meshgate. apt-get runs as root directly, or through sudo -n where
# the user has password-less sudo. This script never fails the bench: a
# proxy that cannot be installed is reported here, and the bench skips
# that proxy's rows, saying why.
set -u

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/local/sbin/$1" ]; }

missing=()
have nginx || missing+=(nginx)
have haproxy || missing+=(haproxy)
[ ${#missing[@]} -eq 0 ] && exit 0

say() { echo "bench/install-proxies.sh: $*" >&2; }

if ! command -v apt-get >/dev/null 2>&1; then
  say "cannot install ${missing[*]}: no apt-get (not a Debian system); the bench skips them"
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  say "cannot install ${missing[*]}: not root and no password-less sudo; install them (apt-get install ${missing[*]}) or the bench skips them"
  exit 0
fi

say "installing Debian packages: ${missing[*]}"
"${as_root[@]}" apt-get update -qq || say "apt-get update failed; trying the install anyway"
for pkg in "${missing[@]}"; do
  # One at a time, so that one package that cannot be had does not keep
  # the other out.
  if ! "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg"; then
    say "apt-get install $pkg failed (see above); the bench skips $pkg"
  fi
done
exit 0
