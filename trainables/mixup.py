"""Mixup of a training batch's inputs and targets (the recipe's ``mixup_alpha``,
:class:`trainables.recipes.TrainingConfig`), seeded so a resumed epoch mixes exactly as before."""
import numpy as np
import torch

from trainables.seeding import numpy_generator


class Mixup:
    """Mixup (Zhang et al.) of a batch's model inputs and targets, drawn per example.

    Each example ``i`` is mixed with partner ``perm[i]`` as ``lam_i x_i + (1 - lam_i) x_perm[i]``,
    ``lam_i ~ Beta(alpha, alpha)`` (DCASE2020 draws lambda per example too); the loss mixes the
    two targets' cross-entropies with the same weights. Draws come from a generator seeded by
    (trial seed, epoch, worker rank, batch index), so a resumed epoch mixes exactly as before.
    """

    def __init__(self, alpha: float, seed: int):
        self.alpha, self.seed = alpha, seed

    def draw(self, batch_size: int, epoch: int, rank: int, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(lam, perm)`` for one batch: weights in [0, 1] and a permutation of the batch."""
        rng = numpy_generator(self.seed, "mixup", epoch, rank, batch)
        lam = rng.beta(self.alpha, self.alpha, size=batch_size).astype(np.float32)
        return torch.from_numpy(lam), torch.from_numpy(rng.permutation(batch_size))

    @staticmethod
    def mix(x: torch.Tensor, lam: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
        """The mixed inputs ``lam x + (1 - lam) x[perm]`` (``lam`` broadcast over each example)."""
        weight = lam.to(x.device).view(-1, *([1] * (x.dim() - 1)))
        return weight * x + (1 - weight) * x[perm.to(x.device)]
