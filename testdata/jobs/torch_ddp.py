"""One replica of a PyTorchJob: joins the process group from the variables the job sets (MASTER_ADDR,
MASTER_PORT, WORLD_SIZE, RANK) over gloo, allreduces rank + 1, and writes what it saw as JSON."""

import json
import os
import sys

import torch
import torch.distributed as dist

dist.init_process_group("gloo")
rank = dist.get_rank()
t = torch.tensor([float(rank + 1)])
dist.all_reduce(t, op=dist.ReduceOp.SUM)
env = {k: os.environ.get(k) for k in ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "PET_NNODES")}
with open(os.path.join(sys.argv[1], f"rank-{rank}.json"), "w") as f:
    json.dump({"rank": rank, "sum": float(t.item()), "env": env}, f)
dist.destroy_process_group()
