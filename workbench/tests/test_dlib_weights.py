"""dlib's face network file read into FaceResNet: a file written in dlib's own format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from detection.ml.face_resnet import FaceResNet
from workbench.dlib_weights import DlibWeightsError, read_dlib_face_resnet
from workbench.tests.dlib_files import write_dlib_file


def test_each_convolution_is_read_with_its_affine_folded_in(tmp_path: Path) -> None:
    written = write_dlib_file(tmp_path / "net.dat", np.random.default_rng(0))
    state = read_dlib_face_resnet(tmp_path / "net.dat")
    for name, (weights, bias, scale, shift) in [
        ("stem", written[0]),
        ("units.0.conv1", written[1]),
        ("units.12.conv2", written[26]),
    ]:
        np.testing.assert_allclose(
            state[f"{name}.weight"].numpy(), weights * scale[:, None, None, None], rtol=1e-6
        )
        np.testing.assert_allclose(state[f"{name}.bias"].numpy(), bias * scale + shift, rtol=1e-6)
    # The logit is new: it starts at zero, so the first step learns from a neutral score.
    assert not state["logit.weight"].any() and not state["logit.bias"].any()
    model = FaceResNet()
    model.load_state_dict(state)
    assert model(torch.rand((1, 3, 150, 150))).item() == 0


def test_a_file_of_another_network_is_refused(tmp_path: Path) -> None:
    write_dlib_file(tmp_path / "short.dat", np.random.default_rng(0), drop_last=True)
    with pytest.raises(DlibWeightsError, match="28 convolutions and 28 affine layers, expected 29"):
        read_dlib_face_resnet(tmp_path / "short.dat")
    data = (tmp_path / "short.dat").read_bytes()
    (tmp_path / "cut.dat").write_bytes(data[: data.rfind(b"con_4") + 100])  # in its filters
    with pytest.raises(DlibWeightsError, match="ends inside a layer"):
        read_dlib_face_resnet(tmp_path / "cut.dat")
