"""DCASE2020 Task 1 two-stage ASC (Hu et al.): FCNN, fsFCNN, fsFCNN-s, the McDonnell two-path
ResNet (and its double-width Resnet-d), Mobnet and small-FCNN.

Written from the authors' Keras models (``MihawkHu/DCASE2020_task1``; docs/MODELS.md
section 2.4) with tensors in (B, C, F, T). Every model reads ``logmel_deltas``: 128 log-mel
bins with [static, delta, delta-delta] stacked on channels, so ``in_channels`` audio channels
become ``3 * in_channels`` feature channels. Task 1a models are mono at 44.1 kHz with 10
classes; task 1b models (Mobnet, small-FCNN) stereo at 48 kHz with 3 classes. All four heads
end in a global average pool of per-class maps: the Keras models apply softmax to that pool,
so it is the logit vector here.

``width`` scales every layer: the first entry of the authors' ``num_filters`` (FCNN 48,
fsFCNN 48, small-FCNN 8, ResNet 24 and Resnet-d 48), Mobnet's first-conv filters (32 =
``alpha`` 1).
"""
import torch
from torch import nn

from trainables.models._layers import SamePad
from trainables.models._registry import register_model

PAPER = "DCASE2020 Task 1 two-stage ASC (Hu et al.)"


def conv_bn_relu(cin: int, cout: int, kernel: int = 3, stride: tuple[int, int] = (1, 1),
                 tf_same: bool = False) -> list[nn.Module]:
    """Bias-free conv -> BN -> ReLU. Padding is ``kernel // 2`` on both sides (Keras
    ``ZeroPadding2D`` + 'valid', and 'same' at stride 1) unless ``tf_same`` asks for
    TensorFlow's 'same' of a strided conv."""
    pad = 0 if tf_same else kernel // 2
    layers = [SamePad((kernel, kernel), stride)] if tf_same else []
    return layers + [nn.Conv2d(cin, cout, kernel, stride, pad, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def max_pool_same(stride: tuple[int, int]) -> list[nn.Module]:
    """Keras ``MaxPooling2D(3, stride, padding='same')``."""
    return [SamePad((3, 3), stride, float("-inf")), nn.MaxPool2d(3, stride)]


def scaled(filters: tuple[int, ...], width: int, base: int) -> tuple[int, ...]:
    """The authors' filter counts scaled by ``width / base``."""
    return tuple(f * width // base for f in filters)


class GlobalAvgPool(nn.Module):
    """(B, C, F, T) -> (B, C)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(-2, -1))


class ChannelAttention(nn.Module):
    """CBAM channel attention (``attention_layer.channel_attention``): a shared MLP C -> C/ratio ->
    C on the global average- and max-pooled vectors, summed, sigmoid, rescales the channels."""

    def __init__(self, channels: int, ratio: int = 2):
        super().__init__()
        hidden = max(1, channels // ratio)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = torch.sigmoid(self.mlp(x.mean(dim=(-2, -1))) + self.mlp(x.amax(dim=(-2, -1))))
        return x * weights[..., None, None]


def attention_head(cin: int, num_classes: int) -> nn.Sequential:
    """FCNN-family classifier: Conv 1x1 -> classes (no bias) -> BN (no affine) -> ReLU -> BN (no
    affine) -> channel attention (ratio 2) -> global average pool."""
    return nn.Sequential(
        nn.Conv2d(cin, num_classes, 1, bias=False), nn.BatchNorm2d(num_classes, affine=False), nn.ReLU(inplace=True),
        nn.BatchNorm2d(num_classes, affine=False), ChannelAttention(num_classes, 2), GlobalAvgPool(),
    )


class FrequencyPaths(nn.Module):
    """Split (B, C, F, T) into ``len(paths)`` equal frequency bands, run one path per band (separate
    weights), concatenate the outputs along frequency."""

    def __init__(self, paths: list[nn.Module]):
        super().__init__()
        self.paths = nn.ModuleList(paths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bands = x.chunk(len(self.paths), dim=-2)
        return torch.cat([path(band) for path, band in zip(self.paths, bands)], dim=-2)


class FCNN(nn.Module):
    """VGG-like FCNN (``fcnn_att.py``, ``small_fcnn_att.py``): input BN, three conv blocks each ending
    in max-pool 2x2, then :func:`attention_head`.

    Block 1: Conv 5x5/2 -> w0, Conv 3x3 -> w0. Block 2: two Conv 3x3 -> w1. Block 3:
    ``block3_convs`` Conv 3x3 -> w2 with Dropout 0.3 after each but the last (FCNN 4, small-FCNN 2).
    """

    def __init__(self, num_classes: int, channels: int, widths: tuple[int, int, int], block3_convs: int):
        super().__init__()
        w0, w1, w2 = widths
        layers = [nn.BatchNorm2d(channels), *conv_bn_relu(channels, w0, 5, (2, 2)), *conv_bn_relu(w0, w0),
                  nn.MaxPool2d(2), *conv_bn_relu(w0, w1), *conv_bn_relu(w1, w1), nn.MaxPool2d(2)]
        cin = w1
        for i in range(block3_convs):
            layers += conv_bn_relu(cin, w2)
            if i < block3_convs - 1:
                layers.append(nn.Dropout(0.3))
            cin = w2
        self.body = nn.Sequential(*layers, nn.MaxPool2d(2))
        self.classifier = attention_head(w2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.body(x))


def fsfcnn_trunk(channels: int, widths: tuple[int, int, int, int]) -> nn.Sequential:
    """fsFCNN's eleven convs (``fsfcnn_att.py``): input BN; Conv 5x5 stride (F 1, T 2) -> w0,
    Conv -> w0, pool (2, 2); two Conv -> w1, pool (2, 2); two Conv -> w2, pool (1, 2); two Conv ->
    w2, pool (1, 2); Conv -> w3 and Conv -> w3, each followed by Dropout 0.5. Pools are 3x3 'same'."""
    w0, w1, w2, w3 = widths
    return nn.Sequential(
        nn.BatchNorm2d(channels), *conv_bn_relu(channels, w0, 5, (1, 2), tf_same=True), *conv_bn_relu(w0, w0),
        *max_pool_same((2, 2)), *conv_bn_relu(w0, w1), *conv_bn_relu(w1, w1), *max_pool_same((2, 2)),
        *conv_bn_relu(w1, w2), *conv_bn_relu(w2, w2), *max_pool_same((1, 2)),
        *conv_bn_relu(w2, w2), *conv_bn_relu(w2, w2), *max_pool_same((1, 2)),
        *conv_bn_relu(w2, w3), nn.Dropout(0.5), *conv_bn_relu(w3, w3), nn.Dropout(0.5),
    )


class FsFCNN(nn.Module):
    """fsFCNN (``bands=1``) and fsFCNN-s (``bands=2``): one :func:`fsfcnn_trunk` per frequency band,
    concatenated on frequency, then :func:`attention_head`.

    fsFCNN-s is not in the authors' code; the paper splits the frequency axis in halves, runs
    two fsFCNN streams and joins them before the classifying convs (docs/MODELS.md 2.4).
    """

    def __init__(self, num_classes: int, channels: int, widths: tuple[int, int, int, int], bands: int):
        super().__init__()
        self.body = FrequencyPaths([fsfcnn_trunk(channels, widths) for _ in range(bands)])
        self.classifier = attention_head(widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.body(x))


class PreActBlock(nn.Module):
    """McDonnell and Gao's residual block: [BN (no affine) -> ReLU -> Conv 3x3] x 2. A downsampling
    block (stride (1, 2), channels doubled) takes an average-pool 3x3 shortcut padded with zero
    channels, as ``resnet.py`` does: frequency is never subsampled."""

    def __init__(self, cin: int, cout: int, stride: tuple[int, int]):
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(cin, affine=False), nn.ReLU(inplace=True), SamePad((3, 3), stride),
            nn.Conv2d(cin, cout, 3, stride, bias=False),
            nn.BatchNorm2d(cout, affine=False), nn.ReLU(inplace=True), nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        )
        self.pool = None
        if stride != (1, 1):
            self.pool = nn.AvgPool2d(3, stride, padding=1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        if self.pool is not None:
            x = self.pool(x)
            x = torch.cat([x, torch.zeros_like(x)], dim=1)
        return y + x


def resnet_path(channels: int, width: int) -> nn.Sequential:
    """One frequency path: BN -> Conv 3x3 stride (1, 2) -> width, then 4 stacks of 2 blocks at
    ``width * 2**stack``, the first block of stacks 1-3 downsampling time (17 convs)."""
    layers = [nn.BatchNorm2d(channels), SamePad((3, 3), (1, 2)), nn.Conv2d(channels, width, 3, (1, 2), bias=False)]
    cin = width
    for stack in range(4):
        cout = width * 2**stack
        layers += [PreActBlock(cin, cout, (1, 2) if stack > 0 else (1, 1)), PreActBlock(cout, cout, (1, 1))]
        cin = cout
    return nn.Sequential(*layers)


class DcaseResNet(nn.Module):
    """McDonnell and Gao's two-path ResNet (``resnet/resnet.py``): bins 0:64 and 64:128 through
    separate :func:`resnet_path`s, concatenated on frequency; BN -> ReLU -> Conv 1x1 -> 32 * width;
    classifier BN -> Conv 1x1 -> classes -> BN (all BN without affine) -> global average pool."""

    def __init__(self, num_classes: int, channels: int, width: int):
        super().__init__()
        top, neck = width * 8, width * 32
        self.body = nn.Sequential(
            FrequencyPaths([resnet_path(channels, width) for _ in range(2)]),
            nn.BatchNorm2d(top, affine=False), nn.ReLU(inplace=True), nn.Conv2d(top, neck, 1, bias=False),
        )
        self.classifier = nn.Sequential(
            nn.BatchNorm2d(neck, affine=False), nn.Conv2d(neck, num_classes, 1, bias=False),
            nn.BatchNorm2d(num_classes, affine=False), GlobalAvgPool(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.body(x))


def make_divisible(value: float, divisor: int = 8) -> int:
    """MobileNetV2's channel rounding: nearest multiple of ``divisor``, never 10 % below ``value``."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class InvertedResidual(nn.Module):
    """MobileNetV2 bottleneck as in ``mobnet.py``: 1x1 expand (x ``expansion``) -> BN -> ReLU ->
    depthwise 3x3 'same' -> BN -> ReLU -> 1x1 project -> BN, plus the input when shapes allow."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int = 2):
        super().__init__()
        hidden = cin * expansion
        self.body = nn.Sequential(
            nn.Conv2d(cin, hidden, 1), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
            SamePad((3, 3), (stride, stride)), nn.Conv2d(hidden, hidden, 3, stride, groups=hidden),
            nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, cout, 1), nn.BatchNorm2d(cout),
        )
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return y + x if self.residual else y


def mobnet_last_width(alpha: float) -> int:
    """Output channels of a Mobnet path: 56, or 80 x ``alpha`` rounded when ``alpha`` > 1."""
    return make_divisible(80 * alpha) if alpha > 1 else 56


def mobnet_path(channels: int, alpha: float) -> nn.Sequential:
    """One frequency path: Conv 3x3/2 -> BN -> ReLU; three groups of three bottlenecks (32, 40, 48
    filters x ``alpha``, the first of each with stride 2); Conv 1x1 -> :func:`mobnet_last_width`
    -> BN -> ReLU."""
    first = make_divisible(32 * alpha)
    last = mobnet_last_width(alpha)
    layers = [SamePad((3, 3), (2, 2)), nn.Conv2d(channels, first, 3, 2), nn.BatchNorm2d(first), nn.ReLU(inplace=True)]
    cin = first
    for filters in (32, 40, 48):
        cout = int(filters * alpha)
        layers += [InvertedResidual(cin, cout, 2), InvertedResidual(cout, cout, 1), InvertedResidual(cout, cout, 1)]
        cin = cout
    layers += [nn.Conv2d(cin, last, 1), nn.BatchNorm2d(last), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class Mobnet(nn.Module):
    """Task 1b Mobnet (``mobnet.py``): two :func:`mobnet_path`s on the frequency halves,
    concatenated on frequency; BN -> ReLU -> Conv 1x1 -> 48 -> Dropout 0.3; classifier BN -> Conv
    1x1 -> classes -> BN (all BN without affine) -> global average pool."""

    def __init__(self, num_classes: int, channels: int, alpha: float):
        super().__init__()
        last = mobnet_last_width(alpha)
        self.body = nn.Sequential(
            FrequencyPaths([mobnet_path(channels, alpha) for _ in range(2)]), nn.BatchNorm2d(last, affine=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(last, 48, 1, bias=False), nn.Dropout(0.3),
        )
        self.classifier = nn.Sequential(
            nn.BatchNorm2d(48, affine=False), nn.Conv2d(48, num_classes, 1, bias=False),
            nn.BatchNorm2d(num_classes, affine=False), GlobalAvgPool(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.body(x))


def register(name: str, task: str, widths: tuple[int, ...]):
    """``register_model`` with this paper's constants; ``task`` 1a (44.1 kHz, 10 classes) or 1b
    (48 kHz, 3 classes); clips are 10 s."""
    rate, classes = {"1a": (44100, 10), "1b": (48000, 3)}[task]
    return register_model(name, input="logmel_deltas", family="dcase2020", paper=PAPER, sample_rate=rate,
                          seconds=10.0, classes=classes, widths=widths)


@register("fcnn", "1a", (12, 24, 48))
def fcnn(num_classes: int, in_channels: int = 1, width: int = 48) -> FCNN:
    channels = 3 * in_channels
    return FCNN(num_classes, channels, scaled((48, 96, 192), width * channels, 48), block3_convs=4)


@register("small_fcnn", "1b", (4, 8, 16))
def small_fcnn(num_classes: int, in_channels: int = 2, width: int = 8) -> FCNN:
    channels = 3 * in_channels
    return FCNN(num_classes, channels, scaled((8, 14, 20), width * channels, 8), block3_convs=2)


@register("fsfcnn", "1a", (12, 24, 48))
def fsfcnn(num_classes: int, in_channels: int = 1, width: int = 48) -> FsFCNN:
    return FsFCNN(num_classes, 3 * in_channels, scaled((48, 96, 512, 768), width, 48), bands=1)


@register("fsfcnn_s", "1a", (12, 24, 48))
def fsfcnn_s(num_classes: int, in_channels: int = 1, width: int = 48) -> FsFCNN:
    return FsFCNN(num_classes, 3 * in_channels, scaled((48, 96, 512, 768), width, 48), bands=2)


@register("dcase_resnet", "1a", (12, 24, 48))
def dcase_resnet(num_classes: int, in_channels: int = 1, width: int = 24) -> DcaseResNet:
    return DcaseResNet(num_classes, 3 * in_channels, width)


@register("dcase_resnet_d", "1a", (12, 24, 48))
def dcase_resnet_d(num_classes: int, in_channels: int = 1, width: int = 48) -> DcaseResNet:
    return DcaseResNet(num_classes, 3 * in_channels, width)


@register("mobnet", "1b", (16, 32, 64))
def mobnet(num_classes: int, in_channels: int = 2, width: int = 32) -> Mobnet:
    return Mobnet(num_classes, 3 * in_channels, alpha=width / 32)
