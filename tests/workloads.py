"""Random attention workloads shared by the tests."""

import numpy as np


def random_attention(shape, seed=0, amp=1.0):
    """Standard-normal Q (B,H,P,E), K (B,H,M,E), V (B,H,M,F) for ``shape`` = (B, H, M, P, E, F)
    (the order of ``--shape``), Q and K scaled by ``amp``."""
    B, H, M, P, E, F = shape
    rng = np.random.default_rng(seed)
    return (amp * rng.standard_normal((B, H, P, E)), amp * rng.standard_normal((B, H, M, E)),
            rng.standard_normal((B, H, M, F)))
