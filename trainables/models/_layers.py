"""Small layers several families share."""
import math

import torch
import torch.nn.functional as F
from torch import nn


class SamePad(nn.Module):
    """TensorFlow/Keras ``padding='same'`` for a following strided conv or pool.

    Pads the last ``len(kernel)`` axes so the output has ``ceil(L / stride)`` steps, with the odd
    sample after the signal as TensorFlow does (PyTorch's symmetric padding would shift every
    strided window by one). ``value`` is the fill: 0 before a conv, ``-inf`` before a max-pool.
    """

    def __init__(self, kernel: tuple[int, ...], stride: tuple[int, ...], value: float = 0.0):
        super().__init__()
        self.kernel, self.stride, self.value = kernel, stride, value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(reversed(x.shape), reversed(self.kernel), reversed(self.stride)):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return F.pad(x, pads, value=self.value)
