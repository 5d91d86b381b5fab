"""2-node DDP on one machine: `python -m cnnexp trainer=ddp trainer.num_nodes=2`, one CPU process per "node".

Each process is started the way a cluster starts one node's process (torchrun, srun): MASTER_ADDR/MASTER_PORT
point at node 0, NODE_RANK says which node it is, LOCAL_RANK=0 tells Lightning the processes are launched
externally; Lightning's environment rendezvous joins them in one gloo process group. The data is split between
the two ranks (DistributedSampler), so only gradient averaging makes the two final models equal.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

DUMP = '''
import os
import torch
from lightning.pytorch.callbacks import Callback


class DumpWeights(Callback):
    """Save this rank's final weights, rank and world size to <folder>/rank<global rank>.pt."""

    def __init__(self, folder):
        self.folder = folder

    def on_train_end(self, trainer, pl_module):
        state = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}
        torch.save({"rank": trainer.global_rank, "world": trainer.world_size, "node": os.environ["NODE_RANK"],
                    "state": state}, os.path.join(self.folder, f"rank{trainer.global_rank}.pt"))
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_nodes_train_the_same_model(tmp_path):
    (tmp_path / "ddp_dump.py").write_text(DUMP)  # python -m puts the working directory on sys.path
    port = str(free_port())
    procs = []
    for node in range(2):
        env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "NODE_RANK": str(node),
               "LOCAL_RANK": "0"}
        command = [
            sys.executable, "-m", "cnnexp", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=1",
            "trainer.num_nodes=2", "model=tiny_cnn", "debug=limit", "trainer.max_epochs=2", "trainer.limit_train_batches=4",
            "trainer.limit_val_batches=2", "trainer.limit_test_batches=2", "~callbacks.tensorboard_pictures",
            "logger.tensorboard.log_graph=false", "++callbacks.dump._target_=ddp_dump.DumpWeights",
            f"++callbacks.dump.folder={tmp_path}", f"hydra.run.dir={tmp_path}/node{node}",
        ]
        procs.append(subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=600))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, f"{out[-2000:]}\n{err[-3000:]}"
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert [(r["rank"], r["world"], r["node"]) for r in ranks] == [(0, 2, "0"), (1, 2, "1")]
    first, second = ranks[0]["state"], ranks[1]["state"]
    assert first.keys() == second.keys()
    for key in first:
        torch.testing.assert_close(first[key], second[key], rtol=0, atol=1e-6, msg=key)
    assert "test/acc=" in outputs[0][0]  # node 0 tested and printed the result line
    assert (Path(tmp_path) / "node0" / "checkpoints" / "last.ckpt").is_file()
