# lib.sh — TAP helpers for shell tests; source it.
#
#   ok COND_EXIT_STATUS NAME   e.g.  cmd; ok $? "cmd works"
#   is GOT EXPECTED NAME
#   has HAYSTACK NEEDLE NAME
#   done_testing              prints the plan and sets the exit status
#
# Programs under test are run as "$GW_WRAP $GW_BIN ..." so that
# `make memcheck` puts them under valgrind.
set -u
_n=0
_failed=0
: "${GW_WRAP:=}"
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
