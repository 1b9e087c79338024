"""SoundFusion (Prodan et al.) residual branches: ResNet2D on log-mel, ResNet1D on waveform.

Both are reconstructions (no public code): see ARCHITECTURES.md section 1.4, config A. Width is
the first stage's filter count (16/32/64 = small/medium/large); the last stage has 4x that.
Measured parameter counts (2-channel input for ResNet2D, 1 channel for ResNet1D, 8 classes):
ResNet2D 538,568 / 2,096,008 / 8,267,528 and ResNet1D 61,080 / 240,936 / 957,000, against the
paper's 445 k / 1.7 M / 6.8 M and 70 k / 280 k / 1.1 M.
"""
import torch
from torch import nn

from trainables.models._registry import register_model

PAPER = "SoundFusion (Prodan et al.)"


class BasicBlock2D(nn.Module):
    """torchvision-style basic block with dropout after the first convolution."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dropout: float = 0.0):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class ResBlock1D(nn.Module):
    """Two kernel-3 convolutions with BN, a 1x1 projection shortcut when channels change."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv1d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm1d(cout),
            nn.ReLU(inplace=True),
            nn.Conv1d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm1d(cout),
        )
        self.shortcut = nn.Identity()
        if cin != cout:
            self.shortcut = nn.Sequential(nn.Conv1d(cin, cout, 1, bias=False), nn.BatchNorm1d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class ResNet2D(nn.Module):
    """Width-scaled 3-stage ResNet34 trunk ([3, 4, 6] blocks at b, 2b, 4b) on (B, C, F, T).

    ``features`` returns the 7x7-pooled flattened map (4b * 49 = 3136 at b = 16), the vector
    SoundFusion's extra FC consumes; ``forward`` adds dropout and the classifier.
    """

    def __init__(self, num_classes: int, in_channels: int = 2, width: int = 16,
                 layers: tuple[int, ...] = (3, 4, 6), block_dropout: float = 0.3, head_dropout: float = 0.5):
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
        self.pool = nn.AdaptiveAvgPool2d((7, 7))
        self.feature_dim = cin * 49
        self.head = nn.Sequential(nn.Dropout(head_dropout), nn.Linear(self.feature_dim, num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.blocks(self.stem(x))), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


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
        self.head = nn.Sequential(nn.Dropout(head_dropout), nn.Linear(cin, num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x)).mean(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@register_model("resnet2d", input="logmel", family="resnet2d", paper=PAPER, widths=(16, 32, 64))
def resnet2d(num_classes: int, in_channels: int = 2, width: int = 16, **options) -> ResNet2D:
    return ResNet2D(num_classes, in_channels, width, **options)


@register_model("resnet1d", input="waveform", family="resnet1d", paper=PAPER, widths=(16, 32, 64))
def resnet1d(num_classes: int, in_channels: int = 1, width: int = 16, **options) -> ResNet1D:
    return ResNet1D(num_classes, in_channels, width, **options)
