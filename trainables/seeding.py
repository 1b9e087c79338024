"""Seeds derived from one experiment seed.

Every random draw in SoundSweep takes an explicit generator seeded by :func:`derive_seed` from
the experiment seed plus the names of what it is for (trial, epoch, example key), never the
global RNG. The same parts give the same seed in any process, on any number of workers.
"""
import hashlib
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # decode workers seed numpy only and never load torch
    import torch


def derive_seed(*parts: object) -> int:
    """Return a 63-bit seed that depends only on ``parts`` (hashed, so order matters)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def torch_generator(*parts: object) -> "torch.Generator":
    """A CPU ``torch.Generator`` seeded with ``derive_seed(*parts)``."""
    import torch  # here, not at the top: decode workers seed numpy only and never load torch

    return torch.Generator().manual_seed(derive_seed(*parts))


def numpy_generator(*parts: object) -> np.random.Generator:
    """A ``numpy.random.Generator`` seeded with ``derive_seed(*parts)``."""
    return np.random.default_rng(derive_seed(*parts))
