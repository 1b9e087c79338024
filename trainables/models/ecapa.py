"""ECAPA-TDNN for music genres (Heo et al.) with convolution channel separation (CCS) and
frequency sub-band aggregation (FSA), written from ``Jungwoo4021/ECAPAwithCCSandFSA``
(``#08``-``#27`` model.py; docs/MODELS.md section 5).

Authors' conventions kept: every conv is followed by ReLU then BN; the Res2 blocks carry a
1x1 "upsample" on the identity when channels change; cepstral mean normalisation (the mean over
time of each band) is done inside the network; the classifier is BN -> Linear -> BN on logits.

Options, all at the paper's scale:

- ``width``: the paper's C = 1024; every block channel count is scaled by ``width / 1024``
  (plain ECAPA's C is ``width``; 512 gives the 6,336,606-parameter reference).
- ``split``: CCS's ``"s/c"``: each block outputs c continuous + s stop channels; the c feed the
  next block and Last-Conv, the s go straight to attentive statistics pooling. The paper's
  grid is 512/512, 256/768, 256/1024, 512/1024 (plain ECAPA is 0/1024).
- ``last_channels``: Last-Conv width L (1536 in the paper's Table 1 and the Melon runs; the
  GTZAN CCS runs used 1.5 (c + s)); not scaled by ``width``.
- FSA (``ecapa_ccs_fsa``): four overlapping 18-bin sub-bands of the 48 mel bands (hop 10), one
  CCS extractor with c/4 and s/4 channels each; their continuous outputs are aggregated by a
  kernel-1 Res2 block (3c -> L) instead of Last-Conv.
"""
import torch
from torch import nn

from trainables.models._layers import small_logits_
from trainables.models._registry import ModelConfigError, register_model

PAPER = "ECAPA-TDNN + CCS + FSA (Heo et al.)"
PAPER_C = 1024
SPLITS = ("512/512", "256/768", "256/1024", "512/1024")
"""The paper's CCS (s, c) grid."""


def conv_relu_bn(cin: int, cout: int, kernel: int = 1, dilation: int = 1) -> nn.Sequential:
    """Conv1d (bias, length-preserving padding) -> ReLU -> BN, the authors' order."""
    return nn.Sequential(nn.Conv1d(cin, cout, kernel, dilation=dilation, padding=kernel // 2 * dilation),
                         nn.ReLU(inplace=True), nn.BatchNorm1d(cout))


class SEModule(nn.Module):
    """Squeeze-excitation over time: mean -> Conv 1x1 -> ReLU -> Conv 1x1 -> sigmoid -> rescale."""

    def __init__(self, channels: int, bottleneck: int = 128):
        super().__init__()
        self.gate = nn.Sequential(nn.Conv1d(channels, bottleneck, 1), nn.ReLU(inplace=True),
                                  nn.Conv1d(bottleneck, channels, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x.mean(dim=-1, keepdim=True))


class Bottle2neck(nn.Module):
    """SE-Res2Block: Conv 1x1 -> ``scale`` chunks, chunk i > 0 summed with the previous output then
    conv (``kernel``, ``dilation``), the last chunk passed through -> Conv 1x1 -> SE -> + identity
    (through a 1x1 conv when ``cin != cout``)."""

    def __init__(self, cin: int, cout: int, kernel: int, dilation: int, scale: int = 8):
        super().__init__()
        self.width = cout // scale
        self.expand = conv_relu_bn(cin, self.width * scale)
        self.convs = nn.ModuleList(conv_relu_bn(self.width, self.width, kernel, dilation) for _ in range(scale - 1))
        self.project = conv_relu_bn(self.width * scale, cout)
        self.se = SEModule(cout)
        self.upsample = nn.Conv1d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        chunks = torch.split(self.expand(x), self.width, dim=1)
        outputs, sp = [], None
        for conv, chunk in zip(self.convs, chunks):
            sp = conv(chunk if sp is None else sp + chunk)
            outputs.append(sp)
        y = self.project(torch.cat([*outputs, chunks[-1]], dim=1))
        return self.se(y) + self.upsample(x)


class Extractor(nn.Module):
    """Fst-Conv (k5) -> c, then three SE-Res2Blocks (k3, dilations 2, 3, 4) of c -> c + s whose last
    s channels are stop channels; block k's input is the Fst-Conv output plus the continuous
    outputs of the earlier blocks. Returns (continuous 3c, stop 3s) channel stacks."""

    def __init__(self, cin: int, cont: int, stop: int):
        super().__init__()
        self.stop = stop
        self.first = conv_relu_bn(cin, cont, 5)
        self.blocks = nn.ModuleList(Bottle2neck(cont, cont + stop, 3, d) for d in (2, 3, 4))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.first(x)
        conts, stops, total = [], [], x
        for block in self.blocks:
            y = block(total)
            cont, stop = y[:, : y.shape[1] - self.stop], y[:, y.shape[1] - self.stop :]
            conts.append(cont)
            stops.append(stop)
            total = total + cont
        return torch.cat(conts, dim=1), torch.cat(stops, dim=1)


class AttentiveStatsPool(nn.Module):
    """Channel- and context-dependent attentive statistics pooling: attention over time from
    [x, mean, std] (Conv 1x1 -> 256 -> ReLU -> BN -> tanh -> Conv 1x1 -> C, softmax over time),
    output [weighted mean, weighted std] (2C)."""

    def __init__(self, channels: int, hidden: int = 256):
        super().__init__()
        self.attention = nn.Sequential(
            nn.Conv1d(3 * channels, hidden, 1), nn.ReLU(inplace=True), nn.BatchNorm1d(hidden), nn.Tanh(),
            nn.Conv1d(hidden, channels, 1), nn.Softmax(dim=2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=2, keepdim=True).expand_as(x)
        std = x.var(dim=2, keepdim=True).clamp(min=1e-4).sqrt().expand_as(x)
        w = self.attention(torch.cat([x, mean, std], dim=1))
        mu = (x * w).sum(dim=2)
        sigma = ((x**2 * w).sum(dim=2) - mu**2).clamp(min=1e-4).sqrt()
        return torch.cat([mu, sigma], dim=1)


class ECAPA(nn.Module):
    """ECAPA-TDNN on (B, C, F, T) log-mel (C * F bins as conv channels), optionally with CCS
    (``stop`` > 0) and FSA (``bands`` > 1 overlapping sub-bands of ``band_bins``, hop ``band_hop``).

    Without FSA: one :class:`Extractor`, Last-Conv 3c -> L + ReLU. With FSA: one extractor per
    band with c / bands and s / bands channels and a kernel-1 :class:`Bottle2neck` aggregating
    every band's continuous outputs into L. Pooling sees [stop channels, L]; classifier BN ->
    Linear -> BN.
    """

    def __init__(self, num_classes: int, in_channels: int, cont: int, stop: int, last: int,
                 bands: int = 1, band_bins: int = 48, band_hop: int = 10):
        super().__init__()
        self.band_starts = [i * band_hop for i in range(bands)] if bands > 1 else [0]
        self.band_bins = band_bins
        self.extractors = nn.ModuleList(
            Extractor(in_channels * band_bins, cont // bands, stop // bands) for _ in self.band_starts
        )
        if bands > 1:
            self.last = Bottle2neck(3 * cont, last, 1, 1)
        else:
            self.last = nn.Sequential(nn.Conv1d(3 * cont, last, 1), nn.ReLU(inplace=True))
        pooled = last + 3 * stop
        self.pool = AttentiveStatsPool(pooled)
        self.classifier = nn.Sequential(nn.BatchNorm1d(2 * pooled), nn.Linear(2 * pooled, num_classes),
                                        small_logits_(nn.BatchNorm1d(num_classes)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x - x.mean(dim=-1, keepdim=True)
        conts, stops = zip(*(
            extractor(x[:, :, start : start + self.band_bins].flatten(1, 2))
            for extractor, start in zip(self.extractors, self.band_starts)
        ))
        pooled = self.pool(torch.cat([*stops, self.last(torch.cat(conts, dim=1))], dim=1))
        return self.classifier(pooled)


def scaled_split(split: str, width: int, bands: int) -> tuple[int, int]:
    """Parse ``"s/c"`` and scale it by ``width / 1024``; both parts must scale to whole multiples
    of ``bands`` (the FSA sub-bands share them out)."""
    try:
        stop, cont = (int(part) for part in split.split("/"))
    except ValueError:
        raise ModelConfigError(f"split {split!r}: write it as 's/c', e.g. 256/768") from None
    unit = PAPER_C * bands
    if (stop * width) % unit or (cont * width) % unit or cont <= 0:
        raise ModelConfigError(f"split {split!r} at width {width}: s and c times {width}/{PAPER_C} must be "
                               f"positive multiples of {bands}; pick a larger width or another split")
    return stop * width // PAPER_C, cont * width // PAPER_C


def register(name: str):
    """``register_model`` with this paper's constants: GTZAN recipe at 22,050 Hz, 2 s training crops
    (44,356 samples), Melon's 28 genres."""
    return register_model(name, input="logmel48", family="ecapa", paper=PAPER, sample_rate=22050,
                          seconds=44356 / 22050, classes=28, widths=(64, 128, 256, 512, 1024))


@register("ecapa_tdnn")
def ecapa_tdnn(num_classes: int, in_channels: int = 1, width: int = 1024, last_channels: int = 1536) -> ECAPA:
    return ECAPA(num_classes, in_channels, width, 0, last_channels)


@register("ecapa_ccs")
def ecapa_ccs(num_classes: int, in_channels: int = 1, width: int = 1024, split: str = "256/768",
              last_channels: int = 1536) -> ECAPA:
    stop, cont = scaled_split(split, width, 1)
    return ECAPA(num_classes, in_channels, cont, stop, last_channels)


@register("ecapa_ccs_fsa")
def ecapa_ccs_fsa(num_classes: int, in_channels: int = 1, width: int = 1024, split: str = "256/768",
                  last_channels: int = 1536) -> ECAPA:
    stop, cont = scaled_split(split, width, 4)
    return ECAPA(num_classes, in_channels, cont, stop, last_channels, bands=4, band_bins=18, band_hop=10)
