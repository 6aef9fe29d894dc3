"""Files in dlib's own format, written for tests: what dlib_face_recognition_resnet_model_v1.dat
holds of each layer that carries weights, between filler."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from detection.ml.face_resnet import UNITS


def _integer(value: int) -> bytes:
    size = max(1, (abs(value).bit_length() + 7) // 8)
    return bytes([size | (0x80 if value < 0 else 0)]) + abs(value).to_bytes(size, "little")


def _text(value: str) -> bytes:
    return _integer(len(value)) + value.encode()


def _tensor(values: np.ndarray) -> bytes:
    shape = (len(values), 1, 1, 1)
    return _integer(2) + b"".join(map(_integer, shape)) + values.astype("<f4").tobytes()


def _dlib_layers() -> list[tuple[int, int, int, int]]:
    """(out, in, stride, padding) of each convolution of dlib's network, input first."""
    layers = [(32, 3, 2, 0)]
    channels = 32
    for width, halves in [*UNITS, (256, True)]:  # and dlib's last unit
        layers += [(width, channels, *((2, 0) if halves else (1, 1))), (width, width, 1, 1)]
        channels = width
    return layers


def write_dlib_file(
    path: Path, rng: np.random.Generator, *, drop_last: bool = False, spread: float = 1.0
) -> list[tuple[np.ndarray, ...]]:
    """dlib's network with random weights (`spread`: their standard deviation); returns each
    convolution's (weights, bias, scale, shift)."""
    parts = [_integer(1), _text("loss_metric_2"), _text("input_rgb_image_sized")]
    written: list[tuple[np.ndarray, ...]] = []
    layers = _dlib_layers()[: -1 if drop_last else None]
    for out, into, stride, padding in layers:
        size = 7 if into == 3 else 3
        weights = rng.normal(scale=spread, size=(out, into, size, size)).astype(np.float32)
        bias, scale, shift = (rng.normal(size=out).astype(np.float32) for _ in range(3))
        parts += [
            _text("con_4"),
            _tensor(np.concatenate([weights.reshape(-1), bias])),
            *map(_integer, (out, size, size, stride, stride, padding, padding)),
            _text("relu_") + b"110",
            _text("affine_"),
            _tensor(np.concatenate([scale, shift])),
        ]
        written.append((weights, bias, scale, shift))
    path.write_bytes(b"".join(parts))
    return written
