"""FaceResNet: the residual network of dlib's face recognition model, with a real/fake logit.

dlib's model (Davis E. King, released under CC0) is a ResNet of 29 convolutions trained to
tell about three million faces apart. Its layout is kept so that its weights load as they
are: a 7x7 stride-2 convolution and a 3x3 stride-2 max pool, then residual units of two 3x3
convolutions at 32, 64, 128 and 256 channels; a unit that halves the map takes the shortcut
through a 2x2 average pool, and where the shortcut and the convolutions differ in size the
smaller is zero-padded (dlib's `add_prev`). dlib follows each convolution with a per-channel
scale and shift (its frozen batch norm); `workbench.dlib_weights` folds that into the
convolution, so here every convolution has a bias and nothing else.

dlib's last unit, down to a 2x2 map, is left out: the logit reads the 4x4 map of a 150 px
face, which gives Grad-CAM 16 cells to place the evidence in (InceptionResnetV1 at 160 px
gives 9).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# (channels, halves the map) of each residual unit, in the order the input flows through.
UNITS: tuple[tuple[int, bool], ...] = (
    ((32, False),) * 3
    + ((64, True),)
    + ((64, False),) * 3
    + ((128, True),)
    + ((128, False),) * 2
    + ((256, True),)
    + ((256, False),) * 2
)
# dlib trained its network on 150x150 face chips: FaceResNet models start at this size.
DLIB_INPUT_SIZE = 150
# dlib's per-channel mean of its training faces (0-255 RGB); its input is (pixel - mean) / 256.
DLIB_MEAN_RGB = (122.782, 117.001, 104.298)
FEATURES = UNITS[-1][0]


class ResidualUnit(nn.Module):
    def __init__(self, in_channels: int, channels: int, *, halves: bool) -> None:
        super().__init__()
        # dlib pads a 3x3 convolution only when its stride is 1.
        stride, padding = (2, 0) if halves else (1, 1)
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=padding)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.halves = halves

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.conv2(F.relu(self.conv1(x)))
        shortcut = F.avg_pool2d(x, 2) if self.halves else x
        return F.relu(zero_padded_sum(shortcut, residual))


class FaceResNet(nn.Module):
    """(N, 3, S, S) RGB in 0-1 (the classifier's `model_input`) → (N, 1) logits."""

    mean: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, UNITS[0][0], 7, stride=2)
        units, channels = [], UNITS[0][0]
        for width, halves in UNITS:
            units.append(ResidualUnit(channels, width, halves=halves))
            channels = width
        self.units = nn.Sequential(*units)
        self.logit = nn.Linear(FEATURES, 1)
        mean = torch.tensor(DLIB_MEAN_RGB).view(1, 3, 1, 1) / 255
        self.register_buffer("mean", mean, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) * (255 / 256)
        x = F.max_pool2d(F.relu(self.stem(x)), 3, stride=2)
        return self.logit(self.units(x).mean(dim=(2, 3)))


def zero_padded_sum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a + b over (C, H, W), each zero-padded at the end to the larger of the two sizes."""
    channels, height, width = (max(p, q) for p, q in zip(a.shape[1:], b.shape[1:], strict=True))

    def padded(t: torch.Tensor) -> torch.Tensor:
        if t.shape[1:] == (channels, height, width):
            return t
        return F.pad(t, (0, width - t.shape[3], 0, height - t.shape[2], 0, channels - t.shape[1]))

    return padded(a) + padded(b)
