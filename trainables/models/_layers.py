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


LOGIT_SCALE = 1e-3
"""Initial logit size per unit of feature RMS (see :func:`small_logits_`)."""


def small_logits_(layer: nn.Module) -> nn.Module:
    """Initialise the layer that outputs a classifier's logits so they start near zero: the untrained
    model predicts about 1/K per class and its first loss is ln K, whatever its features' scale.

    PyTorch's default (uniform, std 1/sqrt(3 fan_in)) gives logits of std RMS(features) / sqrt(3),
    about 1.6 on ResNet2D's pooled features and 10-35 on the random CNNs' dB-scale map means: first
    losses of 1.5 and 5-26 times ln 8. Here a Linear or Conv gets N(0, LOGIT_SCALE^2 / fan_in) weights
    (logit std LOGIT_SCALE x RMS(features)) and a zero bias; a BatchNorm on the logits (ECAPA's last
    layer: its gain is the logit std) gets gain LOGIT_SCALE. The DCASE2020 heads need none: they end
    in an affine-free BatchNorm averaged over time and frequency. Returns ``layer``.
    """
    if isinstance(layer, nn.modules.batchnorm._BatchNorm):
        nn.init.constant_(layer.weight, LOGIT_SCALE)
    else:
        nn.init.normal_(layer.weight, std=LOGIT_SCALE / math.sqrt(layer.weight[0].numel()))
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer


def zero_last_norm_(branch: nn.Sequential) -> nn.Sequential:
    """Zero the gain of the BatchNorm that ends a residual branch (Goyal et al. 2017), so every block
    starts as its shortcut: otherwise each block adds a unit-variance branch and post-ReLU activations
    grow with depth (ResNet2D's pooled features: mean 1.56 with the default, 0.36 with this). Returns
    ``branch``."""
    nn.init.zeros_(branch[-1].weight)
    return branch
