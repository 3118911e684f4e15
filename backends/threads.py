"""Keep math libraries on one thread: two threads on two vCPUs that share one core's FPU
made queries 3-70x slower and erratic."""

from __future__ import annotations

import os

_ONE = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def limit_thread_env() -> None:
    """Ask OpenMP/BLAS for one thread; effective only before numpy/torch are imported."""
    os.environ.update(_ONE)


def limit_torch() -> None:
    """One intra-op thread for torch (call where torch is first used)."""
    import torch

    torch.set_num_threads(1)


def limit_faiss() -> None:
    """One OpenMP thread for faiss, and the BLAS path for small query batches."""
    import faiss

    faiss.omp_set_num_threads(1)
    faiss.cvar.distance_compute_blas_threshold = 16
