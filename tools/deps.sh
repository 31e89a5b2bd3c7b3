#!/bin/sh
# Install, or name, the Debian packages grokwatch needs.
#
# usage: tools/deps.sh SET...   where SET is build, test or bench
#
# Does nothing when every package is present.  As root it installs the
# missing ones with apt-get (running `apt-get update` first); otherwise it
# names them and exits 1, so a packager without root is told exactly what
# is missing.  On a system without dpkg it only checks pkg-config modules.
set -u

build="pkg-config libuv1-dev libzmq3-dev libcjson-dev libopenblas-dev libmicrohttpd-dev
	libcurl4-openssl-dev"
test="python3 python3-numpy python3-torch python3-zmq clang libclang-rt-14-dev valgrind curl
	man-db bsdextrautils binutils strace systemd prometheus prometheus-alertmanager openssl chromium
	python3-websocket
	python3-pandas python3-pip python3-setuptools python3-venv"
bench="libedlib-dev python3-numpy python3-torch chromium python3-websocket"

want=""
for set in "$@"; do
	case "$set" in
	build) want="$want $build" ;;
	test) want="$want $test" ;;
	bench) want="$want $bench" ;;
	*) echo "deps: unknown package set '$set' (build, test, bench)" >&2; exit 2 ;;
	esac
done

if ! command -v dpkg-query >/dev/null 2>&1; then
	# Not Debian: check what the build needs by pkg-config and trust the rest.
	if pkg-config --exists libuv libzmq libcjson openblas libmicrohttpd libcurl 2>/dev/null; then
		exit 0
	fi
	echo "deps: pkg-config cannot find libuv, libzmq, libcjson, openblas, libmicrohttpd and libcurl;" \
		"install them" >&2
	exit 1
fi

missing=""
for p in $want; do
	case " $missing " in *" $p "*) continue ;; esac
	s=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$s" in
	*"install ok installed"*) ;;
	*) missing="$missing $p" ;;
	esac
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "deps: missing Debian packages:$missing" >&2
	echo "deps: install them with: sudo apt-get install$missing" >&2
	exit 1
fi
echo "deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >&2 || exit 1
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing >&2 || exit 1
