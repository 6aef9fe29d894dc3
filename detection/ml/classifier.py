"""The real/fake classifier: checkpoints (written, loaded and verified) and scoring."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

import numpy as np
import torch
import torch.nn.functional as F
from facenet_pytorch import InceptionResnetV1
from facenet_pytorch.models.inception_resnet_v1 import BasicConv2d
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from detection.ml.card import (
    DEFAULT_INPUT_SIZE,
    FACE_RESNET,
    INCEPTION_RESNET_V1,
    MAX_CROP_TOP_CUT,
    NETWORKS,
    Calibration,
    CardError,
    ModelCard,
    checkpoint_sha256,
    is_crop_top_cut,
    read_card,
    remove_card,
    write_card,
)
from detection.ml.face_resnet import FaceResNet
from detection.ml.runtime import (
    ForwardPass,
    OnnxOptions,
    ScoresAndActivations,
    TorchForward,
    onnx_forward,
)
from detection.ml.storage import write_atomically

_LISTED_KEYS = 8


class CheckpointError(Exception):
    """The checkpoint or its model card is missing, unreadable or of the wrong shape."""


@dataclass(frozen=True)
class ModelInfo:
    version: str  # the checkpoint's short hash (see card.checkpoint_version)
    sha256: str  # the checkpoint file's whole hash
    name: str
    trained: bool
    network: str
    input_size: int
    card: ModelCard | None
    flag_threshold: float
    uncertain_threshold: float

    def details(self) -> dict[str, Any]:
        """What an evidence package records of the model that scored an image (JSON)."""
        thresholds = self.card.thresholds if self.card else None
        calibration = self.card.calibration if self.card else Calibration()
        return {
            "name": self.name,
            "version": self.version,
            "checkpoint_sha256": self.sha256,
            "trained": self.trained,
            "network": self.network,
            "input_size": self.input_size,
            "mirror_average": bool(self.card and self.card.mirror_average),
            "thresholds": {
                "fake": self.flag_threshold,
                "uncertain": self.uncertain_threshold,
                "set_by": "model card" if thresholds else "configuration",
                "selection": thresholds.selection if thresholds else "",
            },
            "calibration": {
                "temperature": calibration.temperature,
                "bias": calibration.bias,
                "method": calibration.method,
            },
        }


@dataclass(frozen=True)
class LoadedCheckpoint:
    path: Path
    state_dict: dict[str, torch.Tensor]
    sha256: str
    card: ModelCard | None = None
    # The size the file itself says its weights see faces at (our files; the published one
    # does not say), the share of the box they leave out at the top (files of models that
    # cut it) and their network (files of other networks than the published one's): what a
    # file separated from its card is still read with.
    saved_input_size: int | None = None
    saved_crop_top_cut: float = 0.0
    saved_network: str = INCEPTION_RESNET_V1

    @property
    def version(self) -> str:
        return self.sha256[:12]

    @property
    def input_size(self) -> int:
        if self.card:
            return self.card.input_size
        return self.saved_input_size or DEFAULT_INPUT_SIZE

    @property
    def crop_top_cut(self) -> float:
        return self.card.crop_top_cut if self.card else self.saved_crop_top_cut

    @property
    def network(self) -> str:
        return self.card.network if self.card else self.saved_network

    @property
    def calibration(self) -> Calibration:
        return self.card.calibration if self.card else Calibration()

    @property
    def mirror_average(self) -> bool:
        return bool(self.card and self.card.mirror_average)

    def model_info(self, *, flag_threshold: float, uncertain_threshold: float) -> ModelInfo:
        """Thresholds from the configuration unless the model card sets its own."""
        thresholds = self.card.thresholds if self.card else None
        return ModelInfo(
            version=self.version,
            sha256=self.sha256,
            name=self.card.name if self.card else self.path.stem,
            # Without a card nothing says the weights were trained; claim only what is known.
            trained=bool(self.card and self.card.trained),
            network=self.network,
            input_size=self.input_size,
            card=self.card,
            flag_threshold=thresholds.flag if thresholds else flag_threshold,
            uncertain_threshold=thresholds.uncertain if thresholds else uncertain_threshold,
        )


@overload
def new_classifier() -> InceptionResnetV1: ...
@overload
def new_classifier(network: str) -> nn.Module: ...
def new_classifier(network: str = INCEPTION_RESNET_V1) -> nn.Module:
    """A network of the card's kind, freshly initialised; InceptionResnetV1 never with
    `pretrained=`, which downloads."""
    if network == FACE_RESNET:
        return FaceResNet().eval()
    if network == INCEPTION_RESNET_V1:
        return InceptionResnetV1(pretrained=None, classify=True, num_classes=1).eval()
    raise ValueError(f"unknown network {network!r}: one of {', '.join(NETWORKS)}")


def save_checkpoint(
    path: Path,
    state_dict: dict[str, torch.Tensor],
    card: ModelCard | None,
    *,
    input_size: int | None = None,
    network: str | None = None,
    epoch: int = 0,
    validation_loss: float = math.nan,
) -> None:
    """Write weights in the published layout, then their card; each replaced atomically.

    The layout carries the published file's training keys; the optimiser state stays empty,
    as AdamW's moments would triple the file and serve nobody at run time. The input size
    (the card's, or `input_size` for weights without a card) goes into the file as well: a
    copy that leaves its card behind is still read at the size it was trained at, not at
    the published model's 256 px, where its scores mean nothing. So does the card's
    `crop_top_cut`, where it cuts anything, and its network (the card's, or `network`), where
    it is not the published one's.
    """
    if card is not None and input_size not in (None, card.input_size):
        raise ValueError(f"input_size {input_size} contradicts the card's {card.input_size}")
    if card is not None and network not in (None, card.network):
        raise ValueError(f"network {network} contradicts the card's {card.network}")
    size = card.input_size if card is not None else input_size
    kind = card.network if card is not None else network or INCEPTION_RESNET_V1
    payload = {
        "model_state_dict": state_dict,
        "epoch": epoch,
        "optimizer_state_dict": {},
        "validation_loss": validation_loss,
        **({"input_size": size} if size is not None else {}),
        **({"crop_top_cut": card.crop_top_cut} if card and card.crop_top_cut else {}),
        **({"network": kind} if kind != INCEPTION_RESNET_V1 else {}),
    }
    write_atomically(Path(path), lambda handle: torch.save(payload, handle))
    if card is None:
        remove_card(path)
    else:
        write_card(path, card)


def load_checkpoint(path: Path) -> LoadedCheckpoint:
    """Load, verify every key and shape, and read the model card beside the checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint not found: {path} (run `manage.py fetch_model` for the published "
            "weights or `manage.py make_demo_checkpoint` for an untrained demo model)"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        # torch.load reports damage as any of a dozen exception types (zip, pickle, EOF, ...).
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint: {exc}") from exc
    state_dict = _state_dict_from(payload, path)
    try:
        card = read_card(path)
    except CardError as exc:
        raise CheckpointError(str(exc)) from exc
    saved_network = _saved_network(payload, path)
    if card and card.network != saved_network:
        raise CheckpointError(
            f"{path} holds {saved_network} weights but its model card says {card.network}: "
            "the card belongs to other weights"
        )
    _check_against_architecture(state_dict, path, saved_network)
    saved_input_size = _saved_input_size(payload, path)
    if card and saved_input_size and card.input_size != saved_input_size:
        raise CheckpointError(
            f"{path} was saved for {saved_input_size} px faces but its model card says "
            f"{card.input_size} px: the card belongs to other weights"
        )
    saved_crop_top_cut = _saved_crop_top_cut(payload, path)
    # A file that records its input size records a cut too, if it has one; the published
    # file records neither and says nothing either way.
    if card and saved_input_size and card.crop_top_cut != saved_crop_top_cut:
        raise CheckpointError(
            f"{path} was saved for crops without the top {saved_crop_top_cut:g} of the face box "
            f"but its model card says {card.crop_top_cut:g}: the card belongs to other weights"
        )
    return LoadedCheckpoint(
        path=path,
        state_dict=state_dict,
        sha256=checkpoint_sha256(path),
        card=card,
        saved_input_size=saved_input_size,
        saved_crop_top_cut=saved_crop_top_cut,
        saved_network=saved_network,
    )


def verify_checkpoint(path: Path) -> LoadedCheckpoint:
    """Raise CheckpointError unless the file loads into the classifier; used before installing."""
    loaded = load_checkpoint(path)
    build_classifier(loaded.state_dict, loaded.network)
    return loaded


def _saved_input_size(payload: object, path: Path) -> int | None:
    size = payload.get("input_size") if isinstance(payload, dict) else None
    if size is not None and (not isinstance(size, int) or size < 1):
        raise CheckpointError(f"{path}: input_size must be a positive whole number, not {size!r}")
    return size


def _saved_crop_top_cut(payload: object, path: Path) -> float:
    cut = payload.get("crop_top_cut", 0.0) if isinstance(payload, dict) else 0.0
    if not is_crop_top_cut(cut):
        raise CheckpointError(f"{path}: crop_top_cut must be from 0 to below {MAX_CROP_TOP_CUT}")
    return float(cut)


def _saved_network(payload: object, path: Path) -> str:
    network = payload.get("network", INCEPTION_RESNET_V1) if isinstance(payload, dict) else None
    if network not in NETWORKS:
        raise CheckpointError(f"{path}: network must be one of {', '.join(NETWORKS)}")
    return str(network)


def _state_dict_from(payload: object, path: Path) -> dict[str, torch.Tensor]:
    # The published file wraps the weights with training state; a bare state dict works too.
    if isinstance(payload, dict) and "model_state_dict" in payload:
        payload = payload["model_state_dict"]
    if not isinstance(payload, dict) or not payload:
        raise CheckpointError(
            f"{path} holds no state dict (expected a dict of tensors, or a dict with "
            f"'model_state_dict'; got {type(payload).__name__})"
        )
    not_tensors = sorted(str(k) for k, v in payload.items() if not isinstance(v, torch.Tensor))
    if not_tensors:
        raise CheckpointError(f"{path}: entries that are not tensors: {_listed(not_tensors)}")
    # Shipped weights are stored in fp16 to halve the file; everything downstream (fused
    # batch norm, Grad-CAM gradient, the reference pipeline) computes in float32.
    return {
        str(key): value.float() if value.is_floating_point() else value
        for key, value in payload.items()
    }


def _check_against_architecture(
    state_dict: dict[str, torch.Tensor], path: Path, network: str
) -> None:
    expected = {
        key: tuple(value.shape) for key, value in new_classifier(network).state_dict().items()
    }
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = sorted(
        f"{key} {tuple(state_dict[key].shape)} != expected {shape}"
        for key, shape in expected.items()
        if key in state_dict and tuple(state_dict[key].shape) != shape
    )
    problems = []
    if missing:
        problems.append(f"missing keys: {_listed(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_listed(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatches: {_listed(mismatched)}")
    if problems:
        raise CheckpointError(f"{path} does not fit the {network} network: " + "; ".join(problems))


def _listed(items: list[str]) -> str:
    shown = ", ".join(items[:_LISTED_KEYS])
    more = len(items) - _LISTED_KEYS
    return f"{shown} (and {more} more)" if more > 0 else shown


def build_classifier(
    state_dict: dict[str, torch.Tensor], network: str = INCEPTION_RESNET_V1
) -> nn.Module:
    model = new_classifier(network)
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"weights do not load into the classifier: {exc}") from exc
    return model.eval()


def model_input(crops: torch.Tensor, *, input_size: int) -> torch.Tensor:
    """The original preprocessing: bilinear resize of the 0-255 crop, then divide by 255.

    Training uses this same function, so the model learns on exactly what it scores.
    """
    resized = F.interpolate(
        crops.float(), size=(input_size, input_size), mode="bilinear", align_corners=False
    )
    return resized / 255.0


def cam_layer(model: nn.Module) -> nn.Module:
    """The Grad-CAM target, after which the network is affine up to the logit: for
    InceptionResnetV1 the original one, the last convolution of block8's second branch; for
    FaceResNet its last residual unit (then the average pool and the logit)."""
    if isinstance(model, FaceResNet):
        return model.units[-1]
    assert isinstance(model, InceptionResnetV1)
    return model.block8.branch1[-1]


@dataclass(frozen=True)
class ClassifierOutput:
    logits: np.ndarray  # (N,), before calibration
    probabilities: np.ndarray  # (N,), P(fake)
    activations: np.ndarray  # (N, C, h, w) at the Grad-CAM layer


class FaceClassifier:
    """Scores a batch of face crops and keeps what Grad-CAM needs from the same forward pass.

    Everything after the Grad-CAM layer (concatenation, 1x1 convolution, residual sum,
    average pool, linear, batch norm in eval mode, logits) is affine, so the logit's gradient
    with respect to that layer's output is the same for every input. It is computed once at
    load time by autograd on the unmodified model; per image, Grad-CAM then needs only the
    activations the scoring pass already produced, with no backward pass.
    """

    def __init__(
        self,
        state_dict: dict[str, torch.Tensor],
        *,
        input_size: int,
        device: torch.device,
        network: str = INCEPTION_RESNET_V1,
        calibration: Calibration = Calibration(),  # noqa: B008 (frozen, so shared safely)
        onnx: OnnxOptions | None = None,
        mirror_average: bool = False,
    ) -> None:
        """`onnx` runs the network in ONNX Runtime (CPU only); without it, in PyTorch.
        `mirror_average`: a face's logit is the mean of its own and its mirror image's."""
        self.input_size = input_size
        self.calibration = calibration
        self.mirror_average = mirror_average
        self.device = device
        reference = build_classifier(state_dict, network).to(device)
        self.cam_gradient = logit_gradient_at_cam_layer(reference, input_size)
        self._forward: ForwardPass
        if onnx is None:
            fast = _inference_copy(reference)
            self._forward = TorchForward(ScoresAndActivations(fast, cam_layer(fast)))
        else:
            self._forward = onnx_forward(
                ScoresAndActivations(reference, cam_layer(reference)),
                input_size=input_size,
                graph_path=onnx.graph_path,
                num_threads=onnx.num_threads,
            )

    def model_input(self, crops: torch.Tensor) -> torch.Tensor:
        return model_input(crops.to(self.device), input_size=self.input_size)

    def classify(self, crops: torch.Tensor) -> ClassifierOutput:
        """All crops of one image in one batch: (N, 3, 160, 160) values 0-255."""
        with torch.inference_mode():
            batch = self.model_input(crops)
            if self.mirror_average:
                # One pass over the faces and their mirror images; the heatmap explains the
                # face as it is, so its activations come from the first half.
                logits, activations = self._forward(torch.cat([batch, batch.flip(3)]))
                logits = (logits[: len(batch)] + logits[len(batch) :]) / 2
                activations = activations[: len(batch)]
            else:
                logits, activations = self._forward(batch)
            probabilities = torch.sigmoid(self.calibration.logits(logits))
        return ClassifierOutput(
            logits=logits.cpu().numpy(),
            probabilities=probabilities.cpu().numpy().astype(np.float64),
            activations=activations.contiguous().cpu().numpy(),
        )


def logit_gradient_at_cam_layer(model: nn.Module, input_size: int) -> np.ndarray:
    """d(logit)/d(activation) at the Grad-CAM layer, shape (C, h, w); input-independent."""
    captured: list[torch.Tensor] = []

    def start_graph_here(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
        # Only the affine head after this layer enters the autograd graph: cheap and exact.
        leaf = output.detach().requires_grad_(True)
        captured.append(leaf)
        return leaf

    parameters_required = [p.requires_grad for p in model.parameters()]
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    handle = cam_layer(model).register_forward_hook(start_graph_here)
    try:
        probe = torch.zeros((1, 3, input_size, input_size), device=next(model.parameters()).device)
        with torch.enable_grad():
            logits = model(probe)
            (gradient,) = torch.autograd.grad(logits.sum(), captured[0])
    finally:
        handle.remove()
        for parameter, required in zip(model.parameters(), parameters_required, strict=True):
            parameter.requires_grad_(required)
    return gradient[0].cpu().numpy()


def _inference_copy(model: nn.Module) -> nn.Module:
    # Folding each eval-mode batch norm into its convolution and using channels-last memory
    # lets oneDNN run the network about 1.3x faster on the CPU; the output differs from the
    # unfused model only by float rounding (~1e-7), far inside the parity tolerance.
    fast = copy.deepcopy(model)
    for module in fast.modules():
        if isinstance(module, BasicConv2d):
            _fold_batch_norm(module)
    return fast.to(memory_format=torch.channels_last).eval()


def _fold_batch_norm(block: BasicConv2d) -> None:
    block.conv = fuse_conv_bn_eval(block.conv, block.bn)
    block.bn = nn.Identity()
