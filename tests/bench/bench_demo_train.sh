#!/bin/sh
# bench_demo_train.sh — the full `make demo-train` (tools/demo_train.py) for
# each seed of $DEMO_TRAIN_SEEDS (default "1 2"): the plot, the correlation
# of each metric with held-out accuracy, the alerts, and the wall time (the
# issue's bound: ten minutes on a 2-core machine), ending with one JSON line
# a seed ({"bench": "demo_train", "seed", "wall_sec", "rows": [...]}).
# Not a comparison with a peer: the figures are the correlations, quoted
# with the machine's load, which the run prints.
set -u
src=${GW_SRC:-.}
py=${PYTHON:-/usr/bin/python3}
status=0
for seed in ${DEMO_TRAIN_SEEDS:-1 2}; do
	"$py" "$src/tools/demo_train.py" --seed "$seed" --json || status=1
done
exit $status
