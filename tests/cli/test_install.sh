#!/bin/sh
# test_install.sh — `make install` and `make uninstall`, the systemd units,
# the man pages and the installed library, as a packager and an
# administrator meet them:
#   - install under DESTDIR puts exactly the expected files (the list is
#     written here from the Makefile's promise, with the client's files
#     expected only when its sources exist), with their modes, links and
#     substituted paths, and uninstall leaves no file; the same with every
#     directory variable moved;
#   - installed for real under a scratch PREFIX, both units pass
#     `systemd-analyze verify` (with the installed man pages found for
#     their Documentation= lines) and rate 2.5 or lower under
#     `systemd-analyze security --offline=true`, and so do the drop-in
#     examples of grokwatchd(8) applied to the template;
#   - the man pages render without a warning, every long option that
#     `grokwatchd COMMAND --help` and `grokwatch --help` print is in them
#     and every option they document for a command is in its --help, and
#     every key of config/grokwatchd.json is in grokwatchd.json(5);
#   - a program built against the installed header with `pkg-config
#     grokwatch` links (shared, and static through Requires.private) and runs;
#   - the Python package lands in PREFIX/lib/python3/dist-packages as written
#     and imports (grokwatch.trace's --help runs) from there.
# `make` runs with the caller's MAKEFLAGS (so SANITIZE= reaches it) less the
# jobserver, which a test script cannot share.
. "$GW_SRC/tests/lib.sh"
PY=/usr/bin/python3
SRC=$GW_SRC
gw() { $GW_WRAP "$GW_BIN" "$@"; }
skip() { _n=$((_n + 1)); echo "ok $_n # SKIP $1"; }
MAKEFLAGS=$(printf '%s' "${MAKEFLAGS:-}" | sed 's/ *--jobserver-[a-z]*=[^ ]*//g; s/ -j[0-9]*//g')
export MAKEFLAGS
mk() { make -C "$SRC" --no-print-directory "$@" >>"$TMP/make.log" 2>&1; }
# Files and symbolic links under a tree, relative, sorted.
files() { (cd "$1" && find . \( -type f -o -type l \) | sed 's|^\./||' | LC_ALL=C sort); }
# A man page as plain text (ASCII hyphens, no overstrikes).
render() { LC_ALL=C MANWIDTH=${2:-200} man -l "$1" 2>/dev/null | col -bx; }

VERSION=$(gw --version | sed -n 's/^grokwatchd //p')
has_lib=; has_cli=; has_hdr=
[ -n "$(ls "$SRC"/client/lib/*.c 2>/dev/null)" ] && has_lib=1
[ -n "$(ls "$SRC"/client/cli/*.c 2>/dev/null)" ] && has_cli=1
[ -f "$SRC/include/grokwatch.h" ] && has_hdr=1

# The expected files for PREFIX=$1 with BINDIR $2, LIBDIR $3, INCLUDEDIR $4,
# DATADIR $5, MANDIR $6, SYSTEMD_UNITDIR $7 (absolute, no DESTDIR).
expected() {
	{
		echo "$2/grokwatchd"
		echo "$7/grokwatchd.service"
		echo "$7/grokwatchd@.service"
		echo "$5/grokwatch/grokwatchd.json"
		for h in "$SRC"/config/hooks/*; do
			[ -f "$h" ] && echo "$5/grokwatch/hooks/${h##*/}"
		done
		for d in "$SRC"/config/grafana/*.json; do
			[ -f "$d" ] && echo "$5/grokwatch/grafana/${d##*/}"
		done
		echo "$6/man8/grokwatchd.8"
		echo "$6/man5/grokwatchd.json.5"
		if [ -n "$has_cli" ]; then
			echo "$2/grokwatch"
			echo "$6/man1/grokwatch.1"
		fi
		if [ -n "$has_lib" ]; then
			echo "$3/libgrokwatch.a"
			echo "$3/libgrokwatch.so"
			echo "$3/libgrokwatch.so.0"
			echo "$3/libgrokwatch.so.$VERSION"
		fi
		[ -n "$has_hdr" ] && echo "$4/grokwatch.h"
		for m in "$SRC"/client/python/grokwatch/*.py; do
			[ -f "$m" ] && echo "$1/lib/python3/dist-packages/grokwatch/${m##*/}"
		done
		[ -n "$has_hdr" ] && [ -n "$has_lib" ] && echo "$3/pkgconfig/grokwatch.pc"
	} | sed 's|^/||' | LC_ALL=C sort
}

mode() { stat -c %a "$1"; }

# ---- install under DESTDIR, default directories ------------------------------
is "$(echo "$VERSION" | grep -c '^[0-9][0-9.]*$')" 1 "grokwatchd --version gives a version ($VERSION)"
D=$TMP/dest
mk install DESTDIR="$D"
is $? 0 "make install DESTDIR=... succeeds"
P=/usr/local
is "$(files "$D")" "$(expected $P $P/bin $P/lib $P/include $P/share $P/share/man \
	$P/lib/systemd/system)" "installs exactly the expected files"
cmp -s "$D$P/bin/grokwatchd" "$GW_BIN"; ok $? "the installed grokwatchd is the one built"
is "$(mode "$D$P/bin/grokwatchd")" 755 "grokwatchd is mode 755"
for f in lib/systemd/system/grokwatchd.service lib/systemd/system/grokwatchd@.service \
	share/grokwatch/grokwatchd.json share/man/man8/grokwatchd.8 share/man/man5/grokwatchd.json.5; do
	is "$(mode "$D$P/$f")" 644 "$f is mode 644"
done
cmp -s "$D$P/share/grokwatch/grokwatchd.json" "$SRC/config/grokwatchd.json"
ok $? "the example config is config/grokwatchd.json"
bad=
for m in "$SRC"/client/python/grokwatch/*.py; do
	f=$D$P/lib/python3/dist-packages/grokwatch/${m##*/}
	{ cmp -s "$m" "$f" && [ "$(mode "$f")" = 644 ]; } || bad="$bad ${m##*/}"
done
is "$bad" "" "the Python package is installed as written, mode 644, under lib/python3/dist-packages"
cmp -s "$D$P/share/man/man5/grokwatchd.json.5" "$SRC/man/grokwatchd.json.5"
ok $? "grokwatchd.json.5 installed as written"
U=$D$P/lib/systemd/system
is "$(grep '^ExecStart=' "$U/grokwatchd.service")" \
	"ExecStart=/usr/local/bin/grokwatchd run -c /etc/grokwatch/grokwatchd.json" \
	"grokwatchd.service runs BINDIR/grokwatchd on /etc/grokwatch/grokwatchd.json"
is "$(grep '^ExecStart=' "$U/grokwatchd@.service")" \
	"ExecStart=/usr/local/bin/grokwatchd run -c /etc/grokwatch/%i.json" \
	"grokwatchd@.service runs on /etc/grokwatch/%i.json"
is "$(grep -c '@[A-Z_]*@' "$U/grokwatchd.service" "$U/grokwatchd@.service" | grep -vc ':0$')" 0 \
	"no @VARIABLE@ left in the units"
if [ -n "$has_cli" ]; then
	is "$(mode "$D$P/bin/grokwatch")" 755 "grokwatch is mode 755"
fi
for h in "$SRC"/config/hooks/*; do
	[ -f "$h" ] || continue
	is "$(mode "$D$P/share/grokwatch/hooks/${h##*/}")" 755 "hook ${h##*/} is mode 755"
	cmp -s "$h" "$D$P/share/grokwatch/hooks/${h##*/}"; ok $? "hook ${h##*/} installed as written"
done
if [ -n "$has_lib" ]; then
	L=$D$P/lib
	is "$(readlink "$L/libgrokwatch.so")" "libgrokwatch.so.0" "libgrokwatch.so -> .so.0"
	is "$(readlink "$L/libgrokwatch.so.0")" "libgrokwatch.so.$VERSION" \
		"libgrokwatch.so.0 -> .so.$VERSION"
	is "$(readelf -d "$L/libgrokwatch.so.$VERSION" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')" \
		"libgrokwatch.so.0" "the library's soname is the .so.0 link"
	is "$(mode "$L/libgrokwatch.a")" 644 "libgrokwatch.a is mode 644"
fi
if [ -n "$has_lib" ] && [ -n "$has_hdr" ]; then
	pc=$D$P/lib/pkgconfig/grokwatch.pc
	is "$(sed -n 's/^prefix=//p; s/^libdir=//p; s/^includedir=//p' "$pc" | tr '\n' ' ')" \
		"/usr/local /usr/local/lib /usr/local/include " "grokwatch.pc names the directories"
	is "$(sed -n 's/^Version: //p' "$pc")" "$VERSION" "grokwatch.pc has the version"
	is "$(sed -n 's/^Requires.private: //p' "$pc")" "libzmq libcjson" \
		"grokwatch.pc: Requires.private libzmq libcjson"
fi

files "$D" >"$TMP/first"
mk install DESTDIR="$D"
is "$?:$(files "$D")" "0:$(cat "$TMP/first")" "installing again over it gives the same files"
mk uninstall DESTDIR="$D"
is $? 0 "make uninstall succeeds"
is "$(files "$D")" "" "uninstall leaves no file"
ok "$([ ! -e "$D$P/share/grokwatch" ]; echo $?)" "uninstall removes share/grokwatch"
mk uninstall DESTDIR="$D"
is $? 0 "a second uninstall succeeds"

# ---- every directory variable moved ---------------------------------------------
D=$TMP/dest2
mk install DESTDIR="$D" PREFIX=/opt/gw BINDIR=/opt/gw/sbin LIBDIR=/opt/gw/lib64 \
	INCLUDEDIR=/opt/inc DATADIR=/opt/data MANDIR=/opt/man SYSTEMD_UNITDIR=/etc/systemd/system
is $? 0 "install with every directory set"
is "$(files "$D")" "$(expected /opt/gw /opt/gw/sbin /opt/gw/lib64 /opt/inc /opt/data /opt/man \
	/etc/systemd/system)" "each file goes to its directory"
is "$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$D/etc/systemd/system/grokwatchd@.service")" \
	"/opt/gw/sbin/grokwatchd" "ExecStart= follows BINDIR"
if [ -n "$has_lib" ] && [ -n "$has_hdr" ]; then
	is "$(sed -n 's/^libdir=//p; s/^includedir=//p' "$D/opt/gw/lib64/pkgconfig/grokwatch.pc" |
		tr '\n' ' ')" "/opt/gw/lib64 /opt/inc " "grokwatch.pc follows LIBDIR and INCLUDEDIR"
fi
mk uninstall DESTDIR="$D" PREFIX=/opt/gw BINDIR=/opt/gw/sbin LIBDIR=/opt/gw/lib64 \
	INCLUDEDIR=/opt/inc DATADIR=/opt/data MANDIR=/opt/man SYSTEMD_UNITDIR=/etc/systemd/system
is "$(files "$D")" "" "uninstall with the same directories leaves no file"

# ---- the units ---------------------------------------------------------------
R=$TMP/prefix
mk install PREFIX="$R"
is $? 0 "make install PREFIX=<scratch> succeeds"
# The installed package, from the installed directory alone (PREFIX=/usr puts
# it in /usr/lib/python3/dist-packages, on Debian's python3 path).
out=$(cd "$TMP" && PYTHONPATH="$R/lib/python3/dist-packages" "$PY" -c \
	'import grokwatch, grokwatch.probe, grokwatch.trace; print(grokwatch.__file__)' 2>&1)
is "$out" "$R/lib/python3/dist-packages/grokwatch/__init__.py" \
	"the installed Python package imports, trace and probe included"
out=$(cd "$TMP" && PYTHONPATH="$R/lib/python3/dist-packages" "$PY" -m grokwatch.trace --help 2>&1)
has "$out" "--probe FILE" "python3 -m grokwatch.trace --help runs from the installed package"
U=$R/lib/systemd/system
for key in "Type=notify" "ExecReload=/bin/kill -HUP \$MAINPID" "Restart=on-failure" \
	"DynamicUser=yes" "ProtectSystem=strict" "ProtectHome=read-only" "PrivateTmp=yes" \
	"PrivateDevices=yes" "NoNewPrivileges=yes" "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK" \
	"SystemCallFilter=@system-service" "CapabilityBoundingSet=" "LockPersonality=yes" \
	"MemoryDenyWriteExecute=yes" "RestrictNamespaces=yes" "ProtectKernelTunables=yes" \
	"ProtectKernelModules=yes" "ProtectKernelLogs=yes" "ProtectControlGroups=yes" "UMask=0077"; do
	is "$(grep -cxF "$key" "$U/grokwatchd.service") $(grep -cxF "$key" "$U/grokwatchd@.service")" \
		"1 1" "both units: $key"
done
is "$(grep -c '^WatchdogSec=[1-9]' "$U/grokwatchd.service" "$U/grokwatchd@.service" | grep -c ':1$')" \
	2 "both units set WatchdogSec="
is "$(grep '^StateDirectory=' "$U/grokwatchd.service")" "StateDirectory=grokwatch" \
	"grokwatchd.service: StateDirectory=grokwatch (the default state_dir)"
is "$(grep '^StateDirectory=' "$U/grokwatchd@.service")" "StateDirectory=grokwatch/%i" \
	"grokwatchd@.service: StateDirectory=grokwatch/%i"
is "$(sed -n 's/^ *"state_dir": "\(.*\)",$/\1/p' "$SRC/config/grokwatchd.json")" \
	"/var/lib/grokwatch" "the example config's state_dir is grokwatchd.service's state directory"
# The template is the plain unit with the instance put in: nothing else may drift.
sed -e '/^#/d' -e 's|/etc/grokwatch/grokwatchd.json|/etc/grokwatch/%i.json|' \
	-e 's|^StateDirectory=grokwatch$|StateDirectory=grokwatch/%i|' \
	-e 's|^Description=.*|Description=|' "$U/grokwatchd.service" >"$TMP/plain"
sed -e '/^#/d' -e 's|^Description=.*|Description=|' "$U/grokwatchd@.service" >"$TMP/tmpl"
diff "$TMP/plain" "$TMP/tmpl" >"$TMP/diff"
ok $? "the template differs from grokwatchd.service only in config, state and description"
[ -s "$TMP/diff" ] && sed 's/^/#   /' "$TMP/diff"

if command -v systemd-analyze >/dev/null 2>&1; then
	for u in grokwatchd.service grokwatchd@.service; do
		MANPATH=$R/share/man systemd-analyze verify "$U/$u" >"$TMP/out" 2>&1
		is "$?:$(cat "$TMP/out")" "0:" "systemd-analyze verify $u: no complaint"
		systemd-analyze security --offline=true --threshold=25 "$U/$u" >"$TMP/out" 2>&1
		rc=$?
		level=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' "$TMP/out")
		is "$rc" 0 "systemd-analyze security $u: at most 2.5 (got $level)"
		ok "$(awk -v l="$level" 'BEGIN { exit !(l != "" && l + 0 <= 2.5) }'; echo $?)" \
			"$u: exposure $level <= 2.5"
	done
	# The drop-in examples of grokwatchd(8), each on the template.
	mkdir -p "$TMP/units/grokwatchd@.service.d"
	cp "$U/grokwatchd@.service" "$TMP/units/"
	render "$SRC/man/grokwatchd.8" | awk '/^ +\[Service\]$/ { n++; on = 1 } on && /^$/ { on = 0 }
		on { sub(/^ +/, ""); print > (dir "/dropin." n) }' dir="$TMP"
	n=0
	for f in "$TMP"/dropin.*; do
		[ -f "$f" ] || continue
		n=$((n + 1))
		cp "$f" "$TMP/units/grokwatchd@.service.d/override.conf"
		MANPATH=$R/share/man systemd-analyze verify "$TMP/units/grokwatchd@.service" >"$TMP/out" 2>&1
		is "$?:$(cat "$TMP/out")" "0:" "grokwatchd(8) drop-in $n: verify has no complaint"
		systemd-analyze security --offline=true --threshold=25 "$TMP/units/grokwatchd@.service" \
			>/dev/null 2>&1
		ok $? "grokwatchd(8) drop-in $n: still at most 2.5"
	done
	is "$n" 2 "grokwatchd(8) has its two drop-in examples"
	printf '[Service]\nBindReadOnlyPath=/tmp/x\n' >"$TMP/units/grokwatchd@.service.d/override.conf"
	MANPATH=$R/share/man systemd-analyze verify "$TMP/units/grokwatchd@.service" >"$TMP/out" 2>&1
	has "$(cat "$TMP/out")" "Unknown key" "a misspelt drop-in is reported (so the check reads drop-ins)"
	# The system call filter lets the daemon work: grokwatchd run under
	# strace (start, SIGHUP, SIGTERM) makes no call the unit's
	# SystemCallFilter= lines refuse.  Plus the calls seen only while a
	# checkpoint is computed (strace of `make demo`): libzmq's I/O threads
	# abort unless sched_setscheduler succeeds, OpenBLAS calls mbind.
	if ! command -v strace >/dev/null 2>&1; then
		skip "strace is not installed: the system call filter is not checked"
	elif [ "${GW_BUILD##*/}" = san ]; then
		skip "a sanitizer build makes system calls of its own: filter checked in the plain build"
	else
		sc_expand() {
			systemd-analyze syscall-filter "$1" 2>/dev/null | sed '1d; s/^ *//; /^#/d; /^$/d' |
				while read -r x; do
					case "$x" in @*) sc_expand "$x" ;; *) echo "$x" ;; esac
				done
		}
		for g in $(sed -n 's/^SystemCallFilter=\([^~]\)/\1/p' "$U/grokwatchd.service"); do
			case "$g" in @*) sc_expand "$g" ;; *) echo "$g" ;; esac
		done | LC_ALL=C sort -u >"$TMP/allowed"
		for g in $(sed -n 's/^SystemCallFilter=~//p' "$U/grokwatchd.service"); do
			case "$g" in @*) sc_expand "$g" ;; *) echo "$g" ;; esac
		done | LC_ALL=C sort -u >"$TMP/denied"
		ok "$([ "$(wc -l <"$TMP/allowed")" -gt 300 ]; echo $?)" \
			"the unit's filter allows the @system-service calls ($(wc -l <"$TMP/allowed"))"
		mkdir -p "$TMP/sc/ckpt"
		cat >"$TMP/sc/grokwatchd.json" <<EOF2
{ "run": "sc", "state_dir": "$TMP/sc/state", "watch": { "root": "$TMP/sc/ckpt" },
  "publish": { "endpoint": "tcp://127.0.0.1:*", "query_endpoint": "ipc://$TMP/sc/q" } }
EOF2
		strace -f -qq -o "$TMP/sc/trace" "$GW_BIN" run -c "$TMP/sc/grokwatchd.json" \
			>"$TMP/sc/log" 2>&1 &
		spid=$!
		wait_for 10 grep -qs 'watching' "$TMP/sc/log"
		dpid=$(sed -n '1s/^\([0-9]*\) .*/\1/p' "$TMP/sc/trace")
		kill -HUP "$dpid" 2>/dev/null
		wait_for 5 grep -qs 'SIGHUP' "$TMP/sc/log"
		sleep 0.2
		kill -TERM "${dpid:-$spid}" 2>/dev/null
		exited() { ! kill -0 "$1" 2>/dev/null; }
		wait_for 10 exited "$spid"
		kill -0 "$spid" 2>/dev/null && kill -KILL ${dpid:+"$dpid"} "$spid" 2>/dev/null
		wait "$spid" 2>/dev/null
		has "$(cat "$TMP/sc/log")" "SIGHUP" "the daemon ran under strace and reloaded"
		{ sed -E 's/^[0-9]+ +//; s/^<\.\.\. ([a-z0-9_]+) resumed>.*/\1/; s/^([a-z0-9_]+)\(.*/\1/' \
			"$TMP/sc/trace" | grep -E '^[a-z0-9_]+$'; echo sched_setscheduler; echo mbind; } |
			LC_ALL=C sort -u >"$TMP/sc/used"
		ok "$([ "$(wc -l <"$TMP/sc/used")" -gt 30 ]; echo $?)" \
			"strace saw the daemon's system calls ($(wc -l <"$TMP/sc/used"))"
		is "$(LC_ALL=C comm -23 "$TMP/sc/used" "$TMP/allowed" | tr '\n' ' ')" "" \
			"every system call the daemon makes is in the unit's allow list"
		is "$(LC_ALL=C comm -12 "$TMP/sc/used" "$TMP/denied" | tr '\n' ' ')" "" \
			"and none is in its deny list"
		fams=$(grep -o 'socket(AF_[A-Z0-9]*' "$TMP/sc/trace" | sed 's/socket(//' | LC_ALL=C sort -u)
		has "$fams" "AF_NETLINK" "binding tcp:// reads the interfaces (libzmq, getifaddrs)"
		missing=
		for f in $fams; do
			grep -q "^RestrictAddressFamilies=.*\b$f\b" "$U/grokwatchd.service" || missing="$missing $f"
		done
		is "$missing" "" "RestrictAddressFamilies= allows every family the daemon opens"
	fi
	# The checks can fail: a unit whose program is missing is refused.
	sed 's|^ExecStart=[^ ]*|ExecStart=/nonexistent/grokwatchd|' "$U/grokwatchd.service" \
		>"$TMP/grokwatchd.service"
	MANPATH=$R/share/man systemd-analyze verify "$TMP/grokwatchd.service" >/dev/null 2>&1
	ok "$([ $? -ne 0 ]; echo $?)" "verify refuses a unit whose ExecStart= is missing"
	grep -v '^PrivateDevices=\|^ProtectSystem=\|^CapabilityBoundingSet=\|^SystemCallFilter=' \
		"$U/grokwatchd.service" | sed 's/^DynamicUser=yes/DynamicUser=no/' >"$TMP/grokwatchd.service"
	systemd-analyze security --offline=true --threshold=25 "$TMP/grokwatchd.service" >/dev/null 2>&1
	ok "$([ $? -ne 0 ]; echo $?)" "security rates a unit without its sandbox above 2.5"
else
	skip "systemd-analyze is not installed: units not verified"
fi

# ---- the man pages -------------------------------------------------------------
M=$R/share/man
pages="$M/man8/grokwatchd.8 $M/man5/grokwatchd.json.5"
[ -n "$has_cli" ] && pages="$pages $M/man1/grokwatch.1"
[ -z "$has_cli" ] && pages="$pages $SRC/man/grokwatch.1"
for page in $pages; do
	MANWIDTH=80 man --warnings -l "$page" >"$TMP/out" 2>"$TMP/err"
	is "$?:$(cat "$TMP/err")" "0:" "${page##*/} renders without a warning"
	ok "$([ "$(wc -l <"$TMP/out")" -gt 40 ]; echo $?)" "${page##*/} renders to text"
done

for page in grokwatchd.8 grokwatchd.json.5 grokwatch.1; do
	is "$(sed -n 's/^\.TH [^ ]* [0-9] [^ ]* "grokwatch \([^"]*\)".*/\1/p' "$SRC/man/$page")" "$VERSION" \
		"$page names version $VERSION"
done

# Long options of one --help text, one a line.
longopts() { grep -o -- '--[a-z][a-z0-9-]*' "$1" | LC_ALL=C sort -u; }
# The long options documented in the rendered section (a "   NAME" subsection
# header up to the next one) of a page.
section_opts() {
	render "$1" | awk -v s="   $2" '$0 == s { on = 1; next } /^(   )?[A-Za-z]/ && on { exit } on' |
		grep -o -- '--[a-z][a-z0-9-]*' | LC_ALL=C sort -u
}
render "$SRC/man/grokwatchd.8" >"$TMP/grokwatchd.8.txt"
for cmd in analyze inspect run; do
	gw "$cmd" --help >"$TMP/help" 2>/dev/null
	if [ $? -ne 0 ]; then
		skip "grokwatchd $cmd --help fails: this build has no $cmd"
		continue
	fi
	missing=
	for o in $(longopts "$TMP/help"); do
		grep -Eq -- "(^|[^a-z-])$o([^a-z0-9-]|\$)" "$TMP/grokwatchd.8.txt" || missing="$missing $o"
	done
	is "$missing" "" "every option of 'grokwatchd $cmd --help' is in grokwatchd(8)"
	stale=
	for o in $(section_opts "$SRC/man/grokwatchd.8" "$cmd"); do
		grep -Eq -- "(^|[^a-z-])$o([^a-z0-9-]|\$)" "$TMP/help" || stale="$stale $o"
	done
	is "$stale" "" "every option grokwatchd(8) gives $cmd is in its --help"
done
if [ -n "$has_cli" ] && [ -x "$GW_CLI" ] && $GW_WRAP "$GW_CLI" --help >"$TMP/help" 2>/dev/null; then
	render "$SRC/man/grokwatch.1" >"$TMP/grokwatch.1.txt"
	missing=
	for o in $(longopts "$TMP/help"); do
		grep -Eq -- "(^|[^a-z-])$o([^a-z0-9-]|\$)" "$TMP/grokwatch.1.txt" || missing="$missing $o"
	done
	is "$missing" "" "every option of 'grokwatch --help' is in grokwatch(1)"
	stale=
	for o in $(render "$SRC/man/grokwatch.1" | awk '/^OPTIONS/ { on = 1; next } /^[A-Z]/ { on = 0 } on' |
		grep -o -- '--[a-z][a-z0-9-]*' | LC_ALL=C sort -u); do
		grep -Eq -- "(^|[^a-z-])$o([^a-z0-9-]|\$)" "$TMP/help" || stale="$stale $o"
	done
	is "$stale" "" "every option in grokwatch(1) is in 'grokwatch --help'"
	missing=
	for c in tail status history plot alerts; do
		grep -q "$c" "$TMP/help" || missing="$missing $c"
	done
	is "$missing" "" "grokwatch --help names the commands grokwatch(1) documents"
else
	skip "no grokwatch client in this build: its options are not checked"
fi

# Every key path of the shipped config (objects are followed, anything else is
# a key) is in grokwatchd.json(5).
"$PY" - "$SRC/config/grokwatchd.json" >"$TMP/keys" <<'EOF'
import json, sys
def walk(o, p):
    for k, v in o.items():
        q = p + k
        if isinstance(v, dict):
            walk(v, q + ".")
        else:
            print(q)
walk(json.load(open(sys.argv[1])), "")
EOF
render "$SRC/man/grokwatchd.json.5" >"$TMP/json5.txt"
missing=
nkeys=0
for k in $(cat "$TMP/keys"); do
	nkeys=$((nkeys + 1))
	grep -Eq "^ +$(echo "$k" | sed 's/\./\\./g')( |\$)" "$TMP/json5.txt" || missing="$missing $k"
done
ok "$([ "$nkeys" -gt 30 ]; echo $?)" "config/grokwatchd.json has its keys ($nkeys)"
is "$missing" "" "every key of config/grokwatchd.json is an entry in grokwatchd.json(5)"

# ---- a program against the installed library -------------------------------------
if [ -n "$has_hdr" ] && [ -n "$has_lib" ]; then
	cat >"$TMP/prog.c" <<'EOF'
#include <grokwatch.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
	static const char body[] = "{\"type\": \"metrics\", \"seq\": 7, \"run\": \"r1\", \"step\": 300}";
	char pub[GW_ENDPOINT_MAX], query[GW_ENDPOINT_MAX];
	struct gw_client *c = NULL;
	struct gw_msg *m = NULL;
	int64_t step = 0;

	if (gw_endpoint_parse("tcp://127.0.0.1:5557", pub, query) < 0)
		return 1;
	if (gw_msg_parse("metrics.r1", body, strlen(body), &m) < 0)
		return 2;
	if (gw_msg_step(m, &step) < 0)
		return 3;
	printf("%s %s %s %s %llu %lld\n", pub, query, gw_msg_type(m), gw_msg_run(m),
	       (unsigned long long)gw_msg_seq(m), (long long)step);
	gw_msg_free(m);
	if (gw_client_new(&c) < 0)
		return 4;
	gw_client_free(c);
	return 0;
}
EOF
	want="tcp://127.0.0.1:5557 tcp://127.0.0.1:5558 metrics r1 7 300"
	export PKG_CONFIG_PATH="$R/lib/pkgconfig"
	cflags=$(pkg-config --cflags grokwatch) && libs=$(pkg-config --libs grokwatch)
	ok $? "pkg-config finds the installed grokwatch.pc"
	# A sanitizer build installs an instrumented library: the program
	# needs the same runtime, linked first.
	[ "${GW_BUILD##*/}" = san ] && cflags="$cflags -fsanitize=address,undefined"
	cc -std=c11 -Wall -Wextra -Werror $cflags -o "$TMP/prog" "$TMP/prog.c" $libs 2>"$TMP/err"
	is "$?:$(cat "$TMP/err")" "0:" "a program builds against the installed header and library"
	is "$(LD_LIBRARY_PATH=$R/lib "$TMP/prog")" "$want" "and runs"
	LD_LIBRARY_PATH=$R/lib ldd "$TMP/prog" >"$TMP/ldd"
	has "$(cat "$TMP/ldd")" "$R/lib/libgrokwatch.so.0" "it loads the installed libgrokwatch.so.0"
	# Static: libgrokwatch.a, then what Requires.private names (linked shared
	# here: `pkg-config --static` would ask for the static closure of libzmq,
	# which Debian does not ship whole).
	reqs=$(pkg-config --print-requires-private grokwatch | awk '{ print $1 }' | tr '\n' ' ')
	is "$reqs" "libzmq libcjson " "grokwatch.pc: Requires.private libzmq libcjson"
	slibs="-L$R/lib -l:libgrokwatch.a $(pkg-config --libs $reqs)"
	cc -std=c11 -Wall -Wextra -Werror $cflags -o "$TMP/sprog" "$TMP/prog.c" $slibs 2>"$TMP/err"
	is "$?:$(cat "$TMP/err")" "0:" "a program links libgrokwatch.a with the Requires.private packages"
	is "$("$TMP/sprog")" "$want" "and runs"
	is "$(readelf -d "$TMP/sprog" | grep -c 'NEEDED.*libgrokwatch')" 0 \
		"the static build needs no libgrokwatch.so"
else
	skip "include/grokwatch.h or the client library is not in this tree yet: no program built"
fi

mk uninstall PREFIX="$R"
is "$(files "$R")" "" "uninstall from the scratch PREFIX leaves no file"
if [ "$_failed" -ne 0 ]; then
	echo "# make output (the end):"
	tail -n 30 "$TMP/make.log" | sed 's/^/#   /'
fi
done_testing
