"""Weight-only int8 quantization of any zoo model (DCASE2020 Task 1b, docs/MODELS.md 2.6).

Hu et al. shrink their Task 1b models with TFLite's dynamic-range quantization: weights stored
as symmetric int8 (per output channel for convolutions), batch norm folded into the preceding
convolution, activations in float. PyTorch's ``quantize_dynamic`` only covers ``nn.Linear`` and
RNNs and leaves convolutions in float, so this module does it itself:

1. fold every batch norm that directly follows a convolution inside an ``nn.Sequential``;
2. replace each ``Conv1d``, ``Conv2d`` and ``Linear`` by :class:`Int8Weight`: int8 weights with
   one fp32 scale per output channel, ``scale = max|w| / 127``, dequantized in ``forward``;
3. keep biases, the remaining batch norms and every other parameter in fp32.

:func:`size_kb` counts what inference needs: 1 byte per int8 weight, 4 per fp32 value.

>>> small = quantize(model)          # a new module; ``model`` is left as it was
>>> size_kb(model), size_kb(small)   # about 4x smaller
"""
import copy

import torch
import torch.nn.functional as F
from torch import nn

QUANTIZED_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Linear)
KB = 1024
"""Bytes per KB, as in DCASE2020 Task 1b's 500 KB limit."""


class Int8Weight(nn.Module):
    """A ``Conv1d``/``Conv2d``/``Linear`` whose weight is held as int8 plus one fp32 scale per output
    channel (symmetric, zero point 0) and dequantized on the fly; the float weight is dropped.

    Buffers: ``weight_int8`` (the layer's weight shape, int8) and ``scale`` (out_channels,);
    the wrapped ``layer`` keeps its bias and settings (stride, padding, groups, ...).
    """

    def __init__(self, layer: nn.Module):
        super().__init__()
        weight = layer.weight.detach()
        del layer.weight
        scale = weight.abs().flatten(1).amax(1).clamp_min(1e-12) / 127
        self.register_buffer("weight_int8", torch.round(weight / self._per_channel(scale, weight.dim()))
                             .clamp(-127, 127).to(torch.int8))
        self.register_buffer("scale", scale.float())
        self.layer = layer

    @staticmethod
    def _per_channel(scale: torch.Tensor, dims: int) -> torch.Tensor:
        return scale.view(-1, *([1] * (dims - 1)))

    def dequantized_weight(self) -> torch.Tensor:
        return self.weight_int8.float() * self._per_channel(self.scale, self.weight_int8.dim())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.dequantized_weight()
        if isinstance(self.layer, nn.Linear):
            return F.linear(x, weight, self.layer.bias)
        return self.layer._conv_forward(x, weight, self.layer.bias)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold each batch norm (running statistics) into the convolution right before it, in place.

    Only adjacent pairs inside an ``nn.Sequential`` are folded, where the order is certain; the
    batch norm becomes an ``nn.Identity``. The result computes what the eval-mode model computes.
    """
    pairs = ((nn.Conv1d, nn.BatchNorm1d), (nn.Conv2d, nn.BatchNorm2d))
    for sequential in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        names = list(sequential._modules)
        for first, second in zip(names, names[1:]):
            conv, bn = sequential._modules[first], sequential._modules[second]
            if not any(isinstance(conv, c) and isinstance(bn, b) for c, b in pairs):
                continue
            if bn.running_var is None or conv.out_channels != bn.num_features:
                continue
            factor = torch.rsqrt(bn.running_var + bn.eps)
            if bn.affine:
                factor = factor * bn.weight.detach()
            shift = bn.bias.detach() if bn.affine else torch.zeros_like(factor)
            bias = conv.bias.detach() if conv.bias is not None else torch.zeros_like(factor)
            conv.weight = nn.Parameter(conv.weight.detach() * factor.view(-1, *([1] * (conv.weight.dim() - 1))))
            conv.bias = nn.Parameter((bias - bn.running_mean) * factor + shift)
            sequential._modules[second] = nn.Identity()
    return model


def quantize(model: nn.Module) -> nn.Module:
    """An int8-weight copy of ``model`` in eval mode (batch norms folded, see the module docstring)."""
    model = fold_batchnorm(copy.deepcopy(model).eval())
    _replace_layers(model)
    return model


def _replace_layers(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, QUANTIZED_LAYERS):
            setattr(module, name, Int8Weight(child))
        else:
            _replace_layers(child)


def size_kb(model: nn.Module) -> float:
    """What inference loads, in KB: every parameter and buffer at its element size (int8 weights 1
    byte, scales and float values 4), batch-norm step counters excluded. Works on meta tensors."""
    state = model.state_dict()
    total = sum(t.numel() * t.element_size() for name, t in state.items() if not name.endswith("num_batches_tracked"))
    return total / KB
