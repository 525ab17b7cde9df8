"""Launch helpers for training rules: a free TCP port for each job's rendezvous.

Two training jobs on one node (or one Slurm node shared by several jobs) must not both
bind accelerate's default port 29500, so each job asks the OS for an unused one.

    accelerate launch --main_process_port $(python -m gsm_pipeline.launch) ...
"""
from __future__ import annotations

import socket


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


if __name__ == "__main__":
    print(free_port())
