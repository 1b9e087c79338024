"""Randomly weighted CNN front-ends (Pons and Serra), written from ``jordipons/elmarc``
(``src/dl_models.py``; docs/MODELS.md section 3.2).

The convolutions are never trained: TensorFlow's variance-scaling initialisation (truncated
normal, std sqrt(1.3 * 2 / fan_in)), zero biases, ReLU (ELU in the VGG), no batch norm. A
front-end returns the feature maps of its selected layers; :meth:`RandomCNN.features` is the
paper's feature vector, the average of every feature map over all its positions,
concatenated. The paper classifies that vector with an SVM or an ELM; as a trainable platform
model the front-end is frozen (``trainable=False``) and a linear classifier is trained on it.

``width`` is the paper's filter count n; the allowed values are its small (~160 features, the
size of the MFCC baseline) and large (~3500) settings, large by default. Inputs: waveform
front-ends 12 kHz audio (350,000 samples in the paper), spectrogram front-ends ``mel96`` (96
mel bands, 1376 frames in the paper), layout (B, C, F, T).
"""
import math

import torch
from torch import nn

from trainables.models._layers import SamePad, small_logits_
from trainables.models._registry import register_model

PAPER = "Randomly weighted CNNs (Pons and Serra)"


def variance_scaling_(module: nn.Module) -> None:
    """TensorFlow's ``variance_scaling_initializer()`` on every conv, biases zero."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv1d, nn.Conv2d)):
            std = math.sqrt(1.3 * 2.0 / layer.weight[0].numel())
            nn.init.trunc_normal_(layer.weight, std=std, a=-2 * std, b=2 * std)
            nn.init.zeros_(layer.bias)


class SampleLevel(nn.Module):
    """Lee et al.'s sample-level front-end: Conv1d(k3, stride 3) then 6 x [Conv1d(k3, 'same') ->
    max-pool 3]; the maps are the first conv and the six pools (7n features)."""

    def __init__(self, in_channels: int, n: int):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv1d(in_channels, n, 3, 3), nn.ReLU())
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv1d(n, n, 3, padding=1), nn.ReLU(), nn.MaxPool1d(3)) for _ in range(6)
        )
        self.feature_dim = 7 * n

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps = [self.stem(x)]
        for block in self.blocks:
            maps.append(block(maps[-1]))
        return maps


class BackEnd(nn.Module):
    """Pons' back-end (his Fig. 2) over time: Conv(k7, 'valid') -> n; conv(k7, padded 3) plus residual;
    max-pool 2; conv(k7, padded 3) plus residual. Its maps are the three conv outputs."""

    def __init__(self, cin: int, n: int):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv1d(cin, n, 7), nn.ReLU())
        self.conv2 = nn.Sequential(nn.Conv1d(n, n, 7, padding=3), nn.ReLU())
        self.pool = nn.MaxPool1d(2)
        self.conv3 = nn.Sequential(nn.Conv1d(n, n, 7, padding=3), nn.ReLU())

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        c1 = self.conv1(x)
        r2 = self.conv2(c1) + c1
        pooled = self.pool(r2)
        return [c1, r2, self.conv3(pooled) + pooled]


class FrameLevel(nn.Module):
    """Frame-level front-ends, stride 32, followed by :class:`BackEnd`.

    Dieleman's frame-level: one 'valid' Conv1d of length 512. Zhu et al.'s many-shapes: five
    'same' Conv1d of lengths 512, 256, 128, 64, 32, concatenated. Maps: the front-end convs and
    the three back-end outputs.
    """

    def __init__(self, in_channels: int, n: int, kernels: tuple[int, ...], same: bool):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Sequential(*([SamePad((k,), (32,))] if same else []), nn.Conv1d(in_channels, n, k, 32), nn.ReLU())
            for k in kernels
        )
        self.backend = BackEnd(n * len(kernels), n)
        self.feature_dim = n * (len(kernels) + 3)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps = [conv(x) for conv in self.convs]
        return maps + self.backend(torch.cat(maps, dim=1))


class SingleShape(nn.Module):
    """One Conv2d of ``freq`` bins x 7 frames ('valid') max-pooled over the remaining frequency
    positions: 7x96 (no pooling left) and 7x86 (max over 11 positions). One map, n features."""

    def __init__(self, in_channels: int, n: int, freq: int):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(in_channels, n, (freq, 7)), nn.ReLU())
        self.feature_dim = n

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.conv(x).amax(dim=-2)]


class ChoiVGG(nn.Module):
    """Choi et al.'s small-rectangular VGG: 5 x [Conv2d 3x3 'same' -> ELU -> max-pool] with (F, T)
    pools (2, 4), (3, 4), (2, 5), (2, 4), (4, 4); maps are the five pool outputs (5n features).

    The pools need 96 bands and at least 1280 frames (27.3 s at 12 kHz, hop 256).
    """

    POOLS = ((2, 4), (3, 4), (2, 5), (2, 4), (4, 4))
    MIN_FRAMES = math.prod(t for _, t in POOLS)

    def __init__(self, in_channels: int, n: int):
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(in_channels if i == 0 else n, n, 3, padding=1), nn.ELU(), nn.MaxPool2d(pool))
            for i, pool in enumerate(self.POOLS)
        )
        self.feature_dim = 5 * n

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.shape[-1] < self.MIN_FRAMES:
            raise ValueError(f"the random VGG needs at least {self.MIN_FRAMES} frames; got {x.shape[-1]}")
        maps = []
        for block in self.blocks:
            x = block(x)
            maps.append(x)
        return maps


class MusicCNN(nn.Module):
    """Pons' musically motivated front-ends, timbral and/or temporal, in one wide layer.

    Timbral: for frequency extents 0.9 and 0.4 of the bands (86 and 38 of 96) and time extents 7,
    3, 1 with n, 2n, 4n filters, a Conv2d padded in time only, max-pooled over the remaining
    frequency positions (6 maps, 14n features). Temporal: the mean over frequency (an energy
    envelope), then Conv1d 'same' of each length in ``temporal`` with ``n * 2**i - n // 4``
    filters (4 maps, 14n features); lengths (165, 128, 64, 32) for music, (64, 32, 16, 8) for the
    short sounds of UrbanSound8K ("timbral+time").
    """

    def __init__(self, in_channels: int, n: int, timbral: bool, temporal: tuple[int, ...] = (), n_mels: int = 96):
        super().__init__()
        shapes = [(int(f * n_mels), t, n * m) for f in (0.9, 0.4) for t, m in ((7, 1), (3, 2), (1, 4))] if timbral else []
        self.timbral = nn.ModuleList(
            nn.Sequential(nn.Conv2d(in_channels, count, (freq, t), padding=(0, t // 2)), nn.ReLU())
            for freq, t, count in shapes
        )
        counts = [n * 2**i - n // 4 for i in range(len(temporal))]
        self.temporal = nn.ModuleList(
            nn.Sequential(SamePad((k,), (1,)), nn.Conv1d(in_channels, count, k), nn.ReLU())
            for k, count in zip(temporal, counts)
        )
        self.feature_dim = sum(count for *_, count in shapes) + sum(counts)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        envelope = x.mean(dim=-2)
        return [b(x).amax(dim=-2) for b in self.timbral] + [b(envelope) for b in self.temporal]


class RandomCNN(nn.Module):
    """A random-weight front-end (frozen unless ``trainable``) and a linear classifier on
    :meth:`features`."""

    def __init__(self, frontend: nn.Module, num_classes: int, trainable: bool = False):
        super().__init__()
        self.frontend = frontend
        variance_scaling_(frontend)
        frontend.requires_grad_(trainable)
        self.classifier = small_logits_(nn.Linear(frontend.feature_dim, num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pons and Serra's feature vector: every feature map averaged over all its positions."""
        return torch.cat([m.flatten(2).mean(dim=-1) for m in self.frontend(x)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def register(name: str, input: str, widths: tuple[int, int], min_seconds: float = 0.0):
    """``register_model`` with this paper's constants: 12 kHz, 350,000 samples, GTZAN's 10 classes."""
    return register_model(name, input=input, family="random_cnn", paper=PAPER, sample_rate=12000,
                          seconds=350000 / 12000, classes=10, widths=widths, min_seconds=min_seconds)


@register("random_sample_level", "waveform", (23, 512))
def random_sample_level(num_classes: int, in_channels: int = 1, width: int = 512, trainable: bool = False) -> RandomCNN:
    return RandomCNN(SampleLevel(in_channels, width), num_classes, trainable)


@register("random_frame_level", "waveform", (40, 896))
def random_frame_level(num_classes: int, in_channels: int = 1, width: int = 896, trainable: bool = False) -> RandomCNN:
    return RandomCNN(FrameLevel(in_channels, width, (512,), same=False), num_classes, trainable)


@register("random_frame_level_many", "waveform", (20, 448))
def random_frame_level_many(num_classes: int, in_channels: int = 1, width: int = 448,
                            trainable: bool = False) -> RandomCNN:
    return RandomCNN(FrameLevel(in_channels, width, (512, 256, 128, 64, 32), same=True), num_classes, trainable)


@register("random_7x96", "mel96", (160, 3585))
def random_7x96(num_classes: int, in_channels: int = 1, width: int = 3585, trainable: bool = False) -> RandomCNN:
    return RandomCNN(SingleShape(in_channels, width, 96), num_classes, trainable)


@register("random_7x86", "mel96", (160, 3585))
def random_7x86(num_classes: int, in_channels: int = 1, width: int = 3585, trainable: bool = False) -> RandomCNN:
    return RandomCNN(SingleShape(in_channels, width, 86), num_classes, trainable)


@register("random_vgg", "mel96", (32, 717), min_seconds=1280 * 256 / 12000)
def random_vgg(num_classes: int, in_channels: int = 1, width: int = 717, trainable: bool = False) -> RandomCNN:
    return RandomCNN(ChoiVGG(in_channels, width), num_classes, trainable)


@register("random_timbral", "mel96", (8, 256))
def random_timbral(num_classes: int, in_channels: int = 1, width: int = 256, trainable: bool = False) -> RandomCNN:
    return RandomCNN(MusicCNN(in_channels, width, timbral=True), num_classes, trainable)


@register("random_temporal", "mel96", (8, 256))
def random_temporal(num_classes: int, in_channels: int = 1, width: int = 256, trainable: bool = False) -> RandomCNN:
    return RandomCNN(MusicCNN(in_channels, width, timbral=False, temporal=(165, 128, 64, 32)), num_classes, trainable)


@register("random_timbral_temporal", "mel96", (4, 128))
def random_timbral_temporal(num_classes: int, in_channels: int = 1, width: int = 128,
                            trainable: bool = False) -> RandomCNN:
    return RandomCNN(MusicCNN(in_channels, width, timbral=True, temporal=(165, 128, 64, 32)), num_classes, trainable)


@register("random_timbral_time", "mel96", (4, 128))
def random_timbral_time(num_classes: int, in_channels: int = 1, width: int = 128, trainable: bool = False) -> RandomCNN:
    return RandomCNN(MusicCNN(in_channels, width, timbral=True, temporal=(64, 32, 16, 8)), num_classes, trainable)
