#!/usr/bin/python3
"""trace_worker.py — one rank of a distributed grokwatch.trace run, for
test_trace_dist.py.  Started with RANK, WORLD_SIZE, MASTER_ADDR and
MASTER_PORT in the environment, as torchrun starts ranks (Debian's torch 1.13
cannot run torch.distributed.run under Python 3.11), or without them for a
one-process run.

usage: trace_worker.py CKPT PROBE OUT_DIR BATCH MODE TIMEOUT
MODE: ok | ddp | raise (rank 1's forward raises) | exit (rank 1's process
exits in its forward) | hang (rank 1's forward never returns)

Prints one line: "RESULT wrote PATH", "RESULT none" (a rank that does not
write) or "RESULT TraceError MESSAGE", and the seconds write() took.
"""
import os
import sys
import time

SRC = os.environ["GW_SRC"]
sys.path.insert(0, os.path.join(SRC, "client", "python"))
sys.path.insert(0, os.path.join(SRC, "tests", "reference"))
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

import ref_modules  # noqa: E402
from grokwatch import trace  # noqa: E402

ckpt, probe, out, batch, mode, timeout = sys.argv[1:7]
torch.set_num_threads(1)
rank = 0
if "WORLD_SIZE" in os.environ:
    import datetime
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=120))
    rank = dist.get_rank()
model = ref_modules.HFModel(ckpt, trainable_routers=(mode == "ddp"))
if mode == "ddp":
    model = torch.nn.parallel.DistributedDataParallel(model)
elif mode in ("raise", "exit", "hang") and rank == 1:
    def fault(mod, args):
        if mode == "raise":
            raise RuntimeError("an injected fault in the forward pass")
        if mode == "exit":
            os._exit(3)
        time.sleep(3600)
    model.register_forward_pre_hook(fault)
t0 = time.monotonic()
try:
    path = trace.write(model, probe, 5, out, batch_size=int(batch), timeout=float(timeout))
    print("RESULT", "wrote %s" % path if path else "none", flush=True)
except trace.TraceError as e:
    print("RESULT TraceError", e, flush=True)
print("SECONDS %.2f" % (time.monotonic() - t0), flush=True)
if "WORLD_SIZE" in os.environ:
    dist.destroy_process_group()
