"""dlib's face recognition network (`dlib_face_recognition_resnet_model_v1.dat`) as FaceResNet
weights: a pretrained start for training.

The file is dlib's own serialisation of its `anet_type` (dnn_face_recognition_ex.cpp); the PyPI
package `face_recognition_models` ships it under CC0. Its layers are written from the input
up, each a version string and its fields. Only three kinds carry weights, in this order:
`con_4` (a tensor of the filters followed by the biases, then filters, rows, columns, strides
and paddings), `affine_` (a tensor of per-channel scales followed by the shifts) and `fc_2`
(the 128-d embedding, not used here). Every convolution is followed by its affine, which is
folded into it.

dlib's integers are a control byte (the low four bits count the little-endian bytes that
follow, bit 7 is the sign); a tensor is version 2, four dimensions, then 32-bit little-endian
floats.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from detection.ml.face_resnet import UNITS, FaceResNet

_TENSOR_VERSION = 2
# dlib's network has one unit more than FaceResNet (its last, to a 2x2 map: left out).
_DLIB_CONVOLUTIONS = 1 + 2 * (len(UNITS) + 1)
_LAYER = re.compile(rb"\x01\x05con_4|\x01\x07affine_")


class DlibWeightsError(Exception):
    """The file is not dlib's face recognition network as this reader knows it."""


@dataclass(frozen=True)
class _Convolution:
    weight: np.ndarray  # (out, in, rows, columns)
    bias: np.ndarray
    stride: tuple[int, int]
    padding: tuple[int, int]


class _Reader:
    def __init__(self, data: bytes, position: int) -> None:
        self.data = data
        self.position = position

    def integer(self) -> int:
        control = self._take(1)[0]
        value = int.from_bytes(self._take(control & 0x0F), "little")
        return -value if control & 0x80 else value

    def tensor(self) -> np.ndarray:
        if (version := self.integer()) != _TENSOR_VERSION:
            raise DlibWeightsError(f"tensor version {version}, expected {_TENSOR_VERSION}")
        shape = [self.integer() for _ in range(4)]
        count = int(np.prod(shape))
        return np.frombuffer(self._take(4 * count), "<f4").reshape(shape)

    def _take(self, size: int) -> bytes:
        if self.position + size > len(self.data):
            raise DlibWeightsError("the file ends inside a layer")
        chunk = self.data[self.position : self.position + size]
        self.position += size
        return chunk


def read_dlib_face_resnet(path: Path) -> dict[str, torch.Tensor]:
    """FaceResNet's state dict from dlib's file; the logit's weights start at zero."""
    data = Path(path).read_bytes()
    convolutions: list[_Convolution] = []
    affines: list[tuple[np.ndarray, np.ndarray]] = []
    for match in _LAYER.finditer(data):
        reader = _Reader(data, match.end())
        params = reader.tensor().reshape(-1)
        if match.group().endswith(b"con_4"):
            filters, rows, columns, *steps = (reader.integer() for _ in range(7))
            convolutions.append(
                _Convolution(
                    weight=params[:-filters].reshape(filters, -1, rows, columns),
                    bias=params[-filters:],
                    stride=(steps[0], steps[1]),
                    padding=(steps[2], steps[3]),
                )
            )
        else:
            half = len(params) // 2
            affines.append((params[:half], params[half:]))
    if len(convolutions) != _DLIB_CONVOLUTIONS or len(affines) != _DLIB_CONVOLUTIONS:
        raise DlibWeightsError(
            f"{path}: {len(convolutions)} convolutions and {len(affines)} affine layers, "
            f"expected {_DLIB_CONVOLUTIONS} of each (dlib_face_recognition_resnet_model_v1)"
        )
    model = FaceResNet()
    state = model.state_dict()
    ours = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
    # zip stops at FaceResNet's last convolution: dlib's last unit is left out.
    for (name, target), convolution, (scale, shift) in zip(
        ours, convolutions, affines, strict=False
    ):
        folded = _folded(convolution, scale, shift)
        if (folded.weight.shape, folded.stride, folded.padding) != (
            tuple(target.weight.shape),
            target.stride,
            target.padding,
        ):
            raise DlibWeightsError(
                f"{path}: {name} is {folded.weight.shape} stride {folded.stride} padding "
                f"{folded.padding}, expected {tuple(target.weight.shape)} stride "
                f"{target.stride} padding {target.padding}"
            )
        state[f"{name}.weight"] = torch.from_numpy(folded.weight)
        state[f"{name}.bias"] = torch.from_numpy(folded.bias)
    state["logit.weight"] = torch.zeros_like(state["logit.weight"])
    state["logit.bias"] = torch.zeros_like(state["logit.bias"])
    return state


def _folded(convolution: _Convolution, scale: np.ndarray, shift: np.ndarray) -> _Convolution:
    """The convolution followed by its affine, as one convolution."""
    return dataclasses.replace(
        convolution,
        weight=(convolution.weight * scale[:, None, None, None]).astype(np.float32),
        bias=(convolution.bias * scale + shift).astype(np.float32),
    )
