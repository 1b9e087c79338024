"""SoundFusion (Prodan et al.): the paper's baselines, its residual branches and the two fusions.

The paper publishes no code; docs/MODELS.md section 1.4 gives each reading. Summary:

- ``simple_cnn``: four strided conv + BN + ReLU layers (8/16/32/64) and a linear head, exactly
  the paper's 25,472 parameters (2-channel log-mel, 8 classes).
- ``simple_vgg``: "four 3x3 conv layers + linear" (reconstruction: conv-BN-ReLU-maxpool x4).
- ``vgg16``: the torchvision ``vgg16`` layout (13 conv + 3 FC), first conv on the spectrogram's
  channels; ``width`` scales every conv and FC (64 = torchvision).
- ``nnet1`` / ``nnet2`` (Zhang et al. 2016): kernel-4 1D convolutions over time with every
  spectrogram bin as an input channel, global max || average pooling, dense 300-150-classes.
- ``resnet18`` / ``resnet34``: the torchvision layout on spectrogram channels.
- ``resnet2d`` / ``resnet1d``: the width-scaled branches (config A). Width is the first stage's
  filter count (16/32/64 = s/m/l); the last stage has 4x that. Measured counts (2-channel
  log-mel, resp. mono waveform, 8 classes): ResNet2D 538,568 / 2,096,008 / 8,267,528 and
  ResNet1D 61,080 / 240,936 / 957,000, against the paper's 445 k / 1.7 M / 6.8 M and
  70 k / 280 k / 1.1 M.
- ``soundfusion1`` / ``soundfusion2``: both branches on the same segment, fused by feature
  concatenation or by equal-weight decision averaging.

Like timm, ``num_classes=0`` builds a ResNet without its classifier (``forward`` returns the
feature vector); the fusion models use their branches that way.
"""
import torch
import torchaudio
from torch import nn

from trainables.features import LogMel
from trainables.models._layers import SamePad, small_logits_, zero_last_norm_
from trainables.models._registry import register_model

PAPER = "SoundFusion (Prodan et al.)"
WAVEFORM_RATE = 22050
"""Sample rate of SoundFusion's waveform branch; its spectrogram branch runs at 44.1 kHz."""


class BasicBlock2D(nn.Module):
    """torchvision-style basic block with dropout after the first convolution; the branch starts at
    zero (:func:`zero_last_norm_`)."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dropout: float = 0.0):
        super().__init__()
        self.body = zero_last_norm_(nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cout),
        ))
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class ResBlock1D(nn.Module):
    """Two kernel-3 convolutions with BN, a 1x1 projection shortcut when channels change; the branch
    starts at zero (:func:`zero_last_norm_`)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.body = zero_last_norm_(nn.Sequential(
            nn.Conv1d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm1d(cout),
            nn.ReLU(inplace=True),
            nn.Conv1d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm1d(cout),
        ))
        self.shortcut = nn.Identity()
        if cin != cout:
            self.shortcut = nn.Sequential(nn.Conv1d(cin, cout, 1, bias=False), nn.BatchNorm1d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


def linear_head(features: int, num_classes: int, dropout: float) -> nn.Module:
    """Dropout + linear classifier, or ``Identity`` when ``num_classes`` is 0 (features only)."""
    if not num_classes:
        return nn.Identity()
    return nn.Sequential(nn.Dropout(dropout), small_logits_(nn.Linear(features, num_classes)))


class ResNet2D(nn.Module):
    """ResNet on (B, C, F, T): 7x7/2 stem and max-pool, stages of basic blocks at width * 2**stage.

    SoundFusion's ResNet2D is ``layers=(3, 4, 6)`` pooled to 7x7 and flattened (4b * 49 = 3136
    at b = 16, the vector its extra FC consumes), with dropout in the blocks and before the FC.
    The torchvision ResNet18/34 are ``layers=(2, 2, 2, 2)`` / ``(3, 4, 6, 3)``, ``pool_size=1``
    and no dropout.
    """

    def __init__(self, num_classes: int, in_channels: int = 2, width: int = 16,
                 layers: tuple[int, ...] = (3, 4, 6), pool_size: int = 7, block_dropout: float = 0.3,
                 head_dropout: float = 0.5):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 7, 2, 3, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        blocks, cin = [], width
        for stage, count in enumerate(layers):
            cout = width * 2**stage
            for i in range(count):
                blocks.append(BasicBlock2D(cin, cout, 2 if (i == 0 and stage > 0) else 1, block_dropout))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(pool_size)
        self.feature_dim = cin * pool_size**2
        self.classifier = linear_head(self.feature_dim, num_classes, head_dropout)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.blocks(self.stem(x))), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class ResNet1D(nn.Module):
    """Sample-level 1D ResNet (Allamy and Koerich, rescaled) on raw waveform (B, C, T).

    Stem conv k3/s3, then three stages of two residual blocks (b, 2b, 4b) each followed by
    max-pool 3; ``features`` is the global-average-pooled 4b vector (64 at b = 16).
    """

    def __init__(self, num_classes: int, in_channels: int = 1, width: int = 16,
                 layers: tuple[int, ...] = (2, 2, 2), head_dropout: float = 0.5):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv1d(in_channels, width, 3, stride=3, bias=False),
            nn.BatchNorm1d(width),
            nn.ReLU(inplace=True),
        )
        stages, cin = [], width
        for stage, count in enumerate(layers):
            cout = width * 2**stage
            for _ in range(count):
                stages.append(ResBlock1D(cin, cout))
                cin = cout
            stages.append(nn.MaxPool1d(3))
        self.stages = nn.Sequential(*stages)
        self.feature_dim = cin
        self.classifier = linear_head(cin, num_classes, head_dropout)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x)).mean(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class SimpleCNN(nn.Module):
    """Plain conv stack on (B, C, F, T): per layer Conv(k, stride, padding k // 2, bias) -> BN -> ReLU
    (-> MaxPool 2 when ``pool``), widths ``width * 2**i``; global average pool; linear classifier.

    Simple CNN: kernels (5, 3, 3, 3), stride 2, width 8. Simple VGG: kernels 3, stride 1, pooled.
    """

    def __init__(self, num_classes: int, in_channels: int, width: int, kernels: tuple[int, ...],
                 stride: int, pool: bool):
        super().__init__()
        layers, cin = [], in_channels
        for i, k in enumerate(kernels):
            cout = width * 2**i
            layers += [nn.Conv2d(cin, cout, k, stride, k // 2), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            if pool:
                layers.append(nn.MaxPool2d(2))
            cin = cout
        self.body = nn.Sequential(*layers)
        self.classifier = small_logits_(nn.Linear(cin, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.body(x).mean(dim=(-2, -1)))


class VGG(nn.Module):
    """torchvision VGG: stages of 3x3 conv + ReLU then max-pool, widths ``width * (1, 2, 4, 8, 8)``,
    adaptive average pool to 7x7, classifier FC(64 * width) x 2 with dropout, FC(classes).

    ``layers=(2, 2, 3, 3, 3)``, ``width=64`` is vgg16 (138,357,544 parameters at 3 channels and
    1000 classes).
    """

    def __init__(self, num_classes: int, in_channels: int, width: int, layers: tuple[int, ...],
                 dropout: float = 0.5):
        super().__init__()
        body, cin = [], in_channels
        for stage, count in enumerate(layers):
            cout = width * 2 ** min(stage, 3)
            for _ in range(count):
                body += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True)]
                cin = cout
            body.append(nn.MaxPool2d(2))
        self.body = nn.Sequential(*body)
        self.pool = nn.AdaptiveAvgPool2d(7)
        hidden = 64 * width
        self.classifier = nn.Sequential(
            nn.Linear(cin * 49, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            small_logits_(nn.Linear(hidden, num_classes)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.body(x)), 1))


class NNet(nn.Module):
    """Zhang et al. (2016) nnet1 / nnet2 on (B, C, F, T): 1D convolutions along time, kernel 4,
    with the C * F spectrogram bins as input channels; global max || average pooling over time;
    dense 300 -> 150 -> classes with ReLU.

    nnet1: three 'valid' convs with ReLU, max-pool 2 after the first two (on the paper's 128
    frames the last map has the 26 frames its pooling names). nnet2: a 'valid' conv + BN + ReLU,
    then one residual block of two 'same' convs with BN (125 frames, as its pooling names).
    """

    def __init__(self, num_classes: int, in_channels: int, width: int, n_bins: int, residual: bool):
        super().__init__()
        cin = in_channels * n_bins
        self.block = None
        if residual:
            self.body = nn.Sequential(nn.Conv1d(cin, width, 4), nn.BatchNorm1d(width), nn.ReLU(inplace=True))
            self.block = nn.Sequential(
                SamePad((4,), (1,)), nn.Conv1d(width, width, 4), nn.BatchNorm1d(width), nn.ReLU(inplace=True),
                SamePad((4,), (1,)), nn.Conv1d(width, width, 4), nn.BatchNorm1d(width),
            )
        else:
            self.body = nn.Sequential(
                nn.Conv1d(cin, width, 4), nn.ReLU(inplace=True), nn.MaxPool1d(2),
                nn.Conv1d(width, width, 4), nn.ReLU(inplace=True), nn.MaxPool1d(2),
                nn.Conv1d(width, width, 4), nn.ReLU(inplace=True),
            )
        self.classifier = nn.Sequential(
            nn.Linear(2 * width, 300), nn.ReLU(inplace=True),
            nn.Linear(300, 150), nn.ReLU(inplace=True),
            small_logits_(nn.Linear(150, num_classes)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.body(x.flatten(1, 2))
        if self.block is not None:
            x = torch.relu(x + self.block(x))
        return self.classifier(torch.cat([x.amax(dim=-1), x.mean(dim=-1)], dim=1))


class SoundFusion(nn.Module):
    """ResNet1D on the waveform and ResNet2D on the log-mel of the same segment, fused.

    Input: the waveform ``(B, C, T)`` at ``sample_rate`` (the loop's front-end is the identity
    for input kind ``waveform+logmel``). The model computes SoundFusion's log-mel (n_fft 1024,
    hop 512, 64 bands) of all C channels itself, and feeds the 1D branch the channel mean
    resampled to 22,050 Hz: one input, both representations of exactly the same audio.
    Because the log-mel is computed inside, the loop's SpecAugment does not apply to it.

    Branch features: ResNet1D's 4b GAP vector, and ResNet2D's 7x7 flatten through the paper's
    extra FC to 4b (3136 -> 64 at b = 16).

    - ``fusion="concat"`` (SoundFusion-1): Linear(8b -> classes) on the concatenation.
    - ``fusion="decision"`` (SoundFusion-2): one Linear(4b -> classes) per branch; the output is
      ``log(0.5 p_wave + 0.5 p_spec)``, log-probabilities, so cross-entropy trains both jointly.
    """

    def __init__(self, num_classes: int, in_channels: int, width: int, sample_rate: int, fusion: str):
        super().__init__()
        if fusion not in ("concat", "decision"):
            raise ValueError(f"fusion {fusion!r}: choose concat or decision")
        self.fusion = fusion
        self.logmel = LogMel(sample_rate)
        self.resample = (torchaudio.transforms.Resample(sample_rate, WAVEFORM_RATE)
                         if sample_rate != WAVEFORM_RATE else nn.Identity())
        self.wave = ResNet1D(0, 1, width)
        self.spec = ResNet2D(0, in_channels, width)
        dim = self.wave.feature_dim
        self.project = nn.Linear(self.spec.feature_dim, dim)
        if fusion == "concat":
            self.classifier = small_logits_(nn.Linear(2 * dim, num_classes))
        else:
            self.classifier = nn.ModuleDict({b: small_logits_(nn.Linear(dim, num_classes)) for b in ("wave", "spec")})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f_wave = self.wave(self.resample(x.mean(dim=1, keepdim=True)))
        f_spec = self.project(self.spec(self.logmel(x)))
        if self.fusion == "concat":
            return self.classifier(torch.cat([f_wave, f_spec], dim=1))
        log_p = torch.stack([
            torch.log_softmax(self.classifier["wave"](f_wave), dim=1),
            torch.log_softmax(self.classifier["spec"](f_spec), dim=1),
        ])
        return torch.logsumexp(log_p, dim=0) - torch.log(torch.tensor(2.0))


def register(name: str, input: str, sample_rate: int, widths: tuple[int, ...] | None, seconds: float = 5.0):
    """``register_model`` with this paper's constants (FMA-small: 8 genres, 5 s segments)."""
    return register_model(name, input=input, family="soundfusion", paper=PAPER, sample_rate=sample_rate,
                          seconds=seconds, classes=8, widths=widths)


@register("simple_cnn", "logmel", 44100, (8, 16, 32), seconds=30.0)
def simple_cnn(num_classes: int, in_channels: int = 2, width: int = 8) -> SimpleCNN:
    return SimpleCNN(num_classes, in_channels, width, kernels=(5, 3, 3, 3), stride=2, pool=False)


@register("simple_vgg", "logmel", 44100, (8, 16, 32))
def simple_vgg(num_classes: int, in_channels: int = 2, width: int = 16) -> SimpleCNN:
    return SimpleCNN(num_classes, in_channels, width, kernels=(3, 3, 3, 3), stride=1, pool=True)


@register("vgg16", "logmel", 44100, (16, 32, 64))
def vgg16(num_classes: int, in_channels: int = 2, width: int = 64, dropout: float = 0.5) -> VGG:
    return VGG(num_classes, in_channels, width, layers=(2, 2, 3, 3, 3), dropout=dropout)


@register("nnet1", "stft", 44100, (64, 128, 256))
def nnet1(num_classes: int, in_channels: int = 1, width: int = 256, n_bins: int = 513) -> NNet:
    return NNet(num_classes, in_channels, width, n_bins, residual=False)


@register("nnet2", "stft", 44100, (64, 128, 256))
def nnet2(num_classes: int, in_channels: int = 1, width: int = 256, n_bins: int = 513) -> NNet:
    return NNet(num_classes, in_channels, width, n_bins, residual=True)


@register("resnet18", "logmel", 44100, (16, 32, 64))
def resnet18(num_classes: int, in_channels: int = 2, width: int = 64) -> ResNet2D:
    return ResNet2D(num_classes, in_channels, width, (2, 2, 2, 2), pool_size=1, block_dropout=0.0, head_dropout=0.0)


@register("resnet34", "logmel", 44100, (16, 32, 64))
def resnet34(num_classes: int, in_channels: int = 2, width: int = 64) -> ResNet2D:
    return ResNet2D(num_classes, in_channels, width, (3, 4, 6, 3), pool_size=1, block_dropout=0.0, head_dropout=0.0)


@register("resnet2d", "logmel", 44100, (16, 32, 64))
def resnet2d(num_classes: int, in_channels: int = 2, width: int = 16, block_dropout: float = 0.3,
             head_dropout: float = 0.5) -> ResNet2D:
    return ResNet2D(num_classes, in_channels, width, block_dropout=block_dropout, head_dropout=head_dropout)


@register("resnet1d", "waveform", WAVEFORM_RATE, (16, 32, 64))
def resnet1d(num_classes: int, in_channels: int = 1, width: int = 16, head_dropout: float = 0.5) -> ResNet1D:
    return ResNet1D(num_classes, in_channels, width, head_dropout=head_dropout)


@register("soundfusion1", "waveform+logmel", 44100, (16, 32, 64))
def soundfusion1(num_classes: int, in_channels: int = 2, width: int = 16, sample_rate: int = 44100) -> SoundFusion:
    return SoundFusion(num_classes, in_channels, width, sample_rate, fusion="concat")


@register("soundfusion2", "waveform+logmel", 44100, (16, 32, 64))
def soundfusion2(num_classes: int, in_channels: int = 2, width: int = 16, sample_rate: int = 44100) -> SoundFusion:
    return SoundFusion(num_classes, in_channels, width, sample_rate, fusion="decision")
