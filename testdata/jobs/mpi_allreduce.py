"""One rank of an MPIJob's `mpirun`: an allreduce over MPI_COMM_WORLD; rank 0 writes the result and what
each rank saw as JSON."""

import json
import os
import sys

from mpi4py import MPI

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
total = comm.allreduce(rank + 1, op=MPI.SUM)
seen = comm.gather({"rank": rank, "hostfile": os.environ.get("OMPI_MCA_orte_default_hostfile")}, root=0)
print(json.dumps({"rank": rank, "size": size, "sum": total}), flush=True)
if rank == 0:
    with open(os.path.join(sys.argv[1], "mpi.json"), "w") as f:
        json.dump({"size": size, "sum": total, "ranks": seen}, f)
