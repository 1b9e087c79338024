"""Look, Listen and Learn more / OpenL3 (Cramer et al.): the L3-Net audio subnetwork on the
linear, mel128 and mel256 front-ends, with the 512- and 6144-dimensional embeddings, and the
paper's downstream MLP as classifier (docs/MODELS.md section 4; ``marl/openl3`` models.py).

The subnetwork embeds 1 s windows (48 kHz, hop 242: 197 frames linear, 199 mel): input BN,
three blocks of two Conv 3x3 + BN + ReLU then max-pool 2 (64, 128, 256 filters), Conv 3x3 -> 512
+ BN + ReLU and the bare "audio_embedding_layer" Conv 3x3 -> 512, then a max-pool that leaves
1 x 1 (512-d) or 4 x 3 (6144-d) cells, flattened. 4,687,042 parameters at the paper's width.
An adaptive max-pool to that grid equals the paper's fixed pools on a 1 s window.

The paper trains the subnetwork self-supervised and then an MLP (512 -> 128 -> classes) on
frozen, standardised window embeddings, summing the window softmaxes per clip. Here the
model slides 1 s windows (hop ``hop_frames``, 0.1 s by default) over its input, classifies
each and returns ``log`` of the mean window probability, so the whole net trains end to end
(or fine-tunes from L3 weights loaded with ``load_compatible``). ``width`` scales the
subnetwork (64 = the paper's).
"""
import math

import torch
from torch import nn

from trainables.models._layers import small_logits_
from trainables.models._registry import register_model

PAPER = "Look, Listen and Learn more / OpenL3 (Cramer et al.)"
GRIDS = {512: (1, 1), 6144: (4, 3)}
"""Embedding size -> cells left by the embedding max-pool (at the paper's width)."""


def conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    """Keras Conv2D 3x3 'same' (with bias) -> BN -> ReLU."""
    return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def downstream_mlp(in_features: int, num_classes: int) -> nn.Sequential:
    """The paper's downstream classifier: Dense(512, ReLU) -> Dense(128, ReLU) -> Dense(classes)."""
    return nn.Sequential(
        nn.Linear(in_features, 512), nn.ReLU(inplace=True),
        nn.Linear(512, 128), nn.ReLU(inplace=True),
        small_logits_(nn.Linear(128, num_classes)),
    )


class L3Audio(nn.Module):
    """The L3-Net audio subnetwork up to its flattened embedding: (B, C, F, T) -> (B, embedding_dim)."""

    def __init__(self, in_channels: int, width: int, grid: tuple[int, int]):
        super().__init__()
        layers, cin = [nn.BatchNorm2d(in_channels)], in_channels
        for stage in range(3):
            cout = width * 2**stage
            layers += [*conv_bn_relu(cin, cout), *conv_bn_relu(cout, cout), nn.MaxPool2d(2)]
            cin = cout
        top = 8 * width
        layers += [*conv_bn_relu(cin, top), nn.Conv2d(top, top, 3, padding=1), nn.AdaptiveMaxPool2d(grid)]
        self.body = nn.Sequential(*layers)
        self.embedding_dim = top * grid[0] * grid[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.body(x), 1)


class L3Classifier(nn.Module):
    """:class:`L3Audio` on sliding windows, the paper's MLP per window, mean window probability."""

    def __init__(self, num_classes: int, in_channels: int, width: int, embedding: int, window_frames: int,
                 hop_frames: int):
        super().__init__()
        if embedding not in GRIDS:
            raise ValueError(f"embedding {embedding}: choose one of {sorted(GRIDS)}")
        self.window_frames, self.hop_frames = window_frames, hop_frames
        self.embedding = L3Audio(in_channels, width, GRIDS[embedding])
        self.classifier = downstream_mlp(self.embedding.embedding_dim, num_classes)

    def windows(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, F, T) -> (B * W, C, F, window): 1 s windows every ``hop_frames``, the end padded
        with the example's minimum (silence) so the last window fits; a shorter input is one window."""
        frames = x.shape[-1]
        if frames <= self.window_frames:
            return x
        count = math.ceil((frames - self.window_frames) / self.hop_frames) + 1
        extra = (count - 1) * self.hop_frames + self.window_frames - frames
        floor = x.amin(dim=(-3, -2, -1), keepdim=True).expand(*x.shape[:-1], extra)
        x = torch.cat([x, floor], dim=-1).unfold(-1, self.window_frames, self.hop_frames)
        return x.permute(0, 3, 1, 2, 4).flatten(0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        logits = self.classifier(self.embedding(self.windows(x))).view(batch, -1, self.classifier[-1].out_features)
        return torch.logsumexp(torch.log_softmax(logits, dim=-1), dim=1) - math.log(logits.shape[1])


def l3_builder(embedding: int, frames: int):
    """The builder of one variant: the embedding size and the window length of its front-end."""

    def build(num_classes: int, in_channels: int = 1, width: int = 64, window_frames: int = frames,
              hop_frames: int = 20) -> L3Classifier:
        return L3Classifier(num_classes, in_channels, width, embedding, window_frames, hop_frames)

    return build


FRONT_ENDS = {"linear": 197, "mel128": 199, "mel256": 199}
"""Front-end -> frames in a 1 s window (the linear STFT is not centred)."""


def register_variants() -> None:
    """Register ``l3_<front-end>_<embedding>`` for the three front-ends and both embeddings."""
    for front, frames in FRONT_ENDS.items():
        for embedding in GRIDS:
            register_model(f"l3_{front}_{embedding}", input=f"l3_{front}", family="openl3", paper=PAPER,
                           sample_rate=48000, seconds=1.0, classes=10, widths=(16, 32, 64))(l3_builder(embedding, frames))


register_variants()
