# lib.sh — TAP helpers for shell tests; source it.
#
#   ok COND_EXIT_STATUS NAME   e.g.  cmd; ok $? "cmd works"
#   is GOT EXPECTED NAME
#   has HAYSTACK NEEDLE NAME
#   done_testing              prints the plan and sets the exit status
#   slow SECONDS              SECONDS times the slow-run factor
#   wait_for SECONDS CMD...   run CMD every 20 ms until it succeeds, for at
#                             most `slow SECONDS`; the status of the last try
#
# Programs under test are run as "$GW_WRAP $GW_BIN ..." so that
# `make memcheck` puts them under valgrind.
#
# GW_SLOW, the slow-run factor (exported, an integer), is derived as
# tests/integration/gwtest.py derives it: $GW_SLOW if set, else 10 under
# $GW_WRAP (valgrind), 3 for a sanitizer build ($GW_BUILD is build/san),
# else 1.  Every wait and timeout in a shell test is scaled by it.
set -u
_n=0
_failed=0
: "${GW_WRAP:=}"
if [ -z "${GW_SLOW:-}" ]; then
	if [ -n "$GW_WRAP" ]; then GW_SLOW=10
	elif [ "$(basename "${GW_BUILD:-x}")" = san ]; then GW_SLOW=3
	else GW_SLOW=1; fi
fi
case "$GW_SLOW" in
'' | *[!0-9]* | 0) echo "GW_SLOW=$GW_SLOW: not a positive integer" >&2; exit 2 ;;
esac
export GW_SLOW
TMP=$(mktemp -d "${TMPDIR:-/tmp}/gwsh.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

_report() {
	_n=$((_n + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $_n - $2"
	else
		echo "not ok $_n - $2"
		_failed=$((_failed + 1))
	fi
}
ok() { _report "$1" "$2"; }
is() {
	if [ "$1" = "$2" ]; then _report 0 "$3"; else
		_report 1 "$3"; echo "#   got:      '$1'"; echo "#   expected: '$2'"; fi
}
has() {
	case "$1" in
	*"$2"*) _report 0 "$3" ;;
	*) _report 1 "$3"; echo "#   '$1'"; echo "#   does not contain '$2'" ;;
	esac
}
done_testing() {
	echo "1..$_n"
	[ "$_failed" -eq 0 ]
}
slow() { echo $(($1 * GW_SLOW)); }
wait_for() {
	_left=$(($1 * GW_SLOW * 50))
	shift
	until "$@"; do
		_left=$((_left - 1))
		[ "$_left" -gt 0 ] || { "$@"; return; }
		sleep 0.02
	done
}
