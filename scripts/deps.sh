#!/bin/sh
# Installs (or, without root, prints the command for) the Debian packages lvd builds
# against. `deps.sh --check` only reports whether every header is present (exit 1 if not).
set -eu
PKGS="build-essential pkg-config libzstd-dev libpng-dev libturbojpeg0-dev libjansson-dev libpcre2-dev libutf8proc-dev libopenblas-dev libopenmpi-dev openmpi-bin"
HEADERS="zstd.h png.h turbojpeg.h jansson.h pcre2.h utf8proc.h"

missing=""
for h in $HEADERS; do
	if [ ! -e "/usr/include/$h" ] && [ ! -e "/usr/include/x86_64-linux-gnu/$h" ] && [ ! -e "/usr/local/include/$h" ]; then
		missing="$missing $h"
	fi
done
if [ ! -e /usr/include/x86_64-linux-gnu/cblas.h ] && [ ! -e /usr/include/cblas.h ] && [ ! -e /usr/include/openblas/cblas.h ]; then
	missing="$missing cblas.h"
fi

# mpi.h (Debian's libopenmpi-dev puts it under the Open MPI include folder) is optional:
# without it the build has no MPI backend (multi-rank lvd-sft under mpirun; the MPI tests
# SKIP), so --check only warns; a plain deps.sh installs it.
optional=""
if [ ! -e /usr/include/x86_64-linux-gnu/openmpi/include/mpi.h ] && [ ! -e /usr/lib/x86_64-linux-gnu/openmpi/include/mpi.h ] &&
	[ ! -e /usr/include/mpi.h ] && [ ! -e /usr/local/include/mpi.h ]; then
	optional=" mpi.h"
fi

if [ "${1:-}" = "--check" ]; then
	[ -n "$optional" ] && echo "deps: optional header missing:$optional (libopenmpi-dev openmpi-bin: no MPI backend)" >&2
	[ -z "$missing" ] && exit 0
	echo "deps: missing headers:$missing" >&2
	exit 1
fi

missing="$missing$optional"
if [ -z "$missing" ]; then
	echo "deps: all build dependencies present"
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing:$missing" >&2
	echo "deps: run as root: apt-get update && apt-get install -y $PKGS" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq $PKGS
