#!/bin/sh
# test_ref_selfcheck.sh — self-checks of the fixture generator and the PyTorch
# reference (tests/reference/selfcheck.py): determinism, file shapes, gbar and
# loss sanity, a naive float64 second implementation, the top-k rules and the
# `ref_forward.py compare` command.  Needs no C engine; prints TAP.
set -u
src=${GW_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
exec "${PYTHON:-/usr/bin/python3}" "$src/tests/reference/selfcheck.py"
