"""A stored model as one graph from waveform to probabilities, ready for ``soundsweep export``.

:class:`Classifier` chains a model's front-end, the network and the softmax, exactly what
:func:`~trainables.evaluate.predict` computes for a segment batch without test-time augmentation.

ONNX has no complex numbers, and every spectrogram front-end (torchaudio's ``Spectrogram``, inside
``MelSpectrogram`` too) computes a complex STFT, so the ONNX exporter refuses it. It also pools
adaptively only where the output size divides the input's. :func:`onnx_ready` returns a copy of a
module with those layers replaced by export-only equivalents: each ``Spectrogram`` by a
:class:`DFTSpectrogram` (the same centred, windowed, one-sided spectrum as a ``conv1d`` whose
fixed kernels are the window times the DFT's cosines and sines), each adaptive pool by a
:class:`SlicedAdaptivePool2d`. So the whole classifier, front-end included, is one ONNX graph.
"""
import copy
import math

import torch
import torch.nn.functional as F
from torch import nn
from torchaudio.transforms import Spectrogram


class Classifier(nn.Module):
    """``(batch, channels, samples)`` waveforms at the model's sample rate -> ``(batch, classes)``
    softmax probabilities: front-end, network, softmax, in eval mode. Its weights need no
    gradients, so an exported graph's output is a plain tensor wherever it is called."""

    def __init__(self, frontend: nn.Module, model: nn.Module):
        super().__init__()
        self.frontend, self.model = frontend.eval(), model.eval()
        self.requires_grad_(False)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(self.frontend(waveform)).float(), dim=1)


class DFTSpectrogram(nn.Module):
    """torchaudio's ``Spectrogram`` (reflect-padded centred frames, one-sided, power 1 or 2, no
    normalization) with the STFT as a strided ``conv1d``: ``(..., time) -> (..., freq, frames)``.

    Kernel ``k`` of the real half is ``window * cos(2 pi k n / n_fft)``, of the imaginary half
    ``window * sin(...)`` (its sign does not matter to a power), the window zero-padded to
    ``n_fft`` in the middle as ``torch.stft`` pads it. Sums of the same products in another
    order: float32 results differ from the FFT's by rounding only (tests/test_export.py bounds it).
    """

    def __init__(self, spectrogram: Spectrogram):
        super().__init__()
        s = spectrogram
        if s.pad or s.normalized or s.power not in (1.0, 2.0) or not s.onesided:
            raise ValueError("only an unpadded, unnormalized, one-sided power or magnitude spectrogram "
                             "has a DFT-convolution equivalent here")
        self.n_fft, self.hop_length, self.center, self.pad_mode, self.power = (
            s.n_fft, s.hop_length, s.center, s.pad_mode, s.power)
        window = torch.zeros(s.n_fft, dtype=torch.float64)
        left = (s.n_fft - s.win_length) // 2
        window[left:left + s.win_length] = s.window.double()
        n = torch.arange(s.n_fft, dtype=torch.float64)
        k = torch.arange(s.n_fft // 2 + 1, dtype=torch.float64)[:, None]
        angle = 2 * math.pi * ((k * n) % s.n_fft) / s.n_fft  # the reduction keeps the angle exact
        kernels = torch.cat([torch.cos(angle), torch.sin(angle)]) * window
        self.register_buffer("kernels", kernels.float()[:, None, :])

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        frames = waveform.reshape(-1, 1, waveform.shape[-1])
        if self.center:
            frames = F.pad(frames, (self.n_fft // 2, self.n_fft // 2), mode=self.pad_mode)
        real, imag = F.conv1d(frames, self.kernels, stride=self.hop_length).chunk(2, dim=1)
        power = real * real + imag * imag
        spectrum = power if self.power == 2.0 else torch.sqrt(power)
        # Every size but the batch's is a constant of the graph: layers after the front-end (an
        # adaptive pooling) need them known, and only the batch varies between calls.
        sizes = [int(size) for size in waveform.shape[1:-1] + spectrum.shape[-2:]]
        return spectrum.reshape([-1, *sizes])


class SlicedAdaptivePool2d(nn.Module):
    """``AdaptiveAvgPool2d`` / ``AdaptiveMaxPool2d`` as slices of the input: output cell ``i`` of
    an axis of ``n`` inputs pools inputs ``floor(i n / out)`` to ``ceil((i + 1) n / out)``, as
    PyTorch does. The ONNX exporter pools adaptively only when the output size divides the
    input's; a pool over a rectangle is a pool over rows then columns, so slicing each axis in
    turn gives the same numbers for any size (fixed when the graph is traced)."""

    def __init__(self, pool: nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d):
        super().__init__()
        size = pool.output_size
        self.output_size = (size, size) if isinstance(size, int) else tuple(size)
        if None in self.output_size:
            raise ValueError("an adaptive pool that keeps an input size has no fixed slicing")
        self.reduce = torch.amax if isinstance(pool, nn.AdaptiveMaxPool2d) else torch.mean

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for axis, out in zip((-2, -1), self.output_size):
            n = int(x.shape[axis])
            cells = [self.reduce(x.narrow(axis, i * n // out, -(-(i + 1) * n // out) - i * n // out), dim=axis,
                                 keepdim=True) for i in range(out)]
            x = torch.cat(cells, dim=axis)
        return x


EXPORT_ONLY = {Spectrogram: DFTSpectrogram, nn.AdaptiveAvgPool2d: SlicedAdaptivePool2d,
               nn.AdaptiveMaxPool2d: SlicedAdaptivePool2d}
"""Layers the ONNX exporter cannot take and the export-only layers computing the same."""


def onnx_ready(module: nn.Module) -> nn.Module:
    """A copy of ``module`` with every layer of :data:`EXPORT_ONLY` replaced by its equivalent
    (``ValueError`` for a setting none computes); ``module`` is left as it was."""
    module = copy.deepcopy(module)
    for parent in list(module.modules()):
        for name, child in parent.named_children():
            if type(child) in EXPORT_ONLY:
                setattr(parent, name, EXPORT_ONLY[type(child)](child))
    return module
