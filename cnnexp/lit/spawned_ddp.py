"""`SpawnedDDPStrategy`: Lightning's DDP whose spawned worker processes finish together and close their group.

With `start_method: spawn` (`conf/trainer/ddp_sim.yaml`: two CPU processes over gloo), every `trainer.fit` /
`trainer.test` starts fresh worker processes that exit as soon as their part is done. Lightning closes the process
group at exit only for NCCL; with gloo, a rank that exits while a peer still holds its connection open can take
the peer down with it (gloo throws "Connection closed by peer" on its own thread, and an exception there aborts
the process: SIGABRT). Here each rank that finished its stage normally waits for the others at a barrier and then
destroys the process group, so no rank leaves while a peer still talks to it. A rank that failed skips the
barrier (the others would wait for it), and the launcher reports its error as before.
"""

from __future__ import annotations

import torch.distributed as dist
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.trainer.states import TrainerStatus


class SpawnedDDPStrategy(DDPStrategy):
    """`DDPStrategy` (same arguments) whose spawned workers meet at a barrier and close the process group at
    the end of each stage. Other start methods (a script launched once per rank, e.g. by torchrun or SLURM) keep
    their group for the next stage, as Lightning does."""

    def teardown(self) -> None:
        super().teardown()
        trainer = getattr(self.lightning_module, "_trainer", None)
        finished = trainer is not None and trainer.state.status == TrainerStatus.RUNNING  # not after an error
        if self._start_method == "spawn" and dist.is_available() and dist.is_initialized() and finished:
            dist.barrier()
            dist.destroy_process_group()
