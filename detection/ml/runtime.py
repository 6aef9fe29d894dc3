"""Where the classifier's forward pass runs: PyTorch, or ONNX Runtime on the CPU.

Either way one forward pass gives the logits and the activations at the Grad-CAM layer.
ONNX Runtime fuses each convolution with its batch norm and ReLU and keeps the weights in
the layout its kernels want, which makes the classifier about twice as fast as PyTorch's
eager mode on this CPU. The graph is exported from the checkpoint once per model version
and cached; a cached graph is used only after it reproduces PyTorch's output on a probe.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import onnxruntime
import torch
from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidGraph, InvalidProtobuf
from torch import nn

from detection.ml.storage import write_atomically

logger = logging.getLogger(__name__)

# Bump when the exported graph's inputs or outputs change: old cache files are then ignored.
_GRAPH_FORMAT = 1
# The parity budget for P(fake) is 1e-4; logits agreeing this closely keep well inside it.
# Float rounding grows with a logit's size, hence the relative part: at |logit| = 12 a
# difference of 1e-4 moves P(fake) by less than 1e-9.
_LOGIT_TOLERANCE = 1e-4
_LOGIT_RELATIVE_TOLERANCE = 1e-5
_ACTIVATION_TOLERANCE = 1e-3
_MAX_FACES_PER_BATCH = 4096


class ForwardPass(Protocol):
    def __call__(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3, S, S) model inputs to logits (N,) and Grad-CAM activations (N, C, h, w)."""
        ...


class ScoresAndActivations(nn.Module):
    """The classifier as one function of its input: the logits and the Grad-CAM activations."""

    def __init__(self, model: nn.Module, cam_layer: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.cam_layer = cam_layer

    def forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        captured: list[torch.Tensor] = []
        handle = self.cam_layer.register_forward_hook(
            lambda _module, _inputs, output: captured.append(output)
        )
        try:
            logits = self.model(batch).reshape(-1)
        finally:
            handle.remove()
        return logits, captured[0]


class TorchForward:
    def __init__(self, network: ScoresAndActivations) -> None:
        self.network = network.eval()

    def __call__(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.inference_mode():
            return self.network(batch.contiguous(memory_format=torch.channels_last))


class OnnxForward:
    def __init__(self, graph: bytes | Path, *, num_threads: int) -> None:
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
        # Idle threads would otherwise spin for a while after each image, taking the CPU
        # from the other worker processes on the machine.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        model = str(graph) if isinstance(graph, Path) else graph
        self.session = onnxruntime.InferenceSession(
            model, options, providers=["CPUExecutionProvider"]
        )

    def __call__(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, activations = self.session.run(None, {"batch": batch.cpu().numpy()})
        return torch.from_numpy(logits), torch.from_numpy(activations)


@dataclass(frozen=True)
class OnnxOptions:
    graph_path: Path  # the cached export; see onnx_graph_path
    num_threads: int


def onnx_graph_path(cache_dir: Path, *, version: str, input_size: int) -> Path:
    return cache_dir / f"classifier-{version}-{input_size}px-v{_GRAPH_FORMAT}.onnx"


def onnx_forward(
    network: ScoresAndActivations, *, input_size: int, graph_path: Path, num_threads: int
) -> OnnxForward:
    """ONNX Runtime over the cached graph, exported first when it is missing or wrong."""
    probe = torch.rand((3, 3, input_size, input_size), generator=torch.Generator().manual_seed(0))
    expected = TorchForward(network)(probe)
    if graph_path.exists():
        try:
            cached = OnnxForward(graph_path, num_threads=num_threads)
        except (Fail, InvalidGraph, InvalidProtobuf) as error:
            logger.warning("unreadable cached classifier graph %s: %s", graph_path, error)
        else:
            if _agrees(cached(probe), expected):
                return cached
            logger.warning("cached classifier graph %s disagrees with the model", graph_path)
    graph = export_graph(network, input_size=input_size)
    try:
        write_atomically(graph_path, lambda handle: handle.write(graph))
    except OSError as error:
        # A read-only cache costs an export per process start, not the analysis.
        logger.warning("cannot cache the classifier graph at %s: %s", graph_path, error)
    exported = OnnxForward(graph, num_threads=num_threads)
    if not _agrees(exported(probe), expected):
        raise RuntimeError("the ONNX export of the classifier does not reproduce its output")
    return exported


def export_graph(network: ScoresAndActivations, *, input_size: int) -> bytes:
    """The network as a serialized ONNX graph with a variable number of faces per batch."""
    logger.info("exporting the classifier to ONNX (once per model version)")
    # torch.export fixes a dimension of size 1 as a constant; an example of 2 keeps it free.
    example = torch.zeros((2, 3, input_size, input_size))
    faces = torch.export.Dim("faces", min=1, max=_MAX_FACES_PER_BATCH)
    program = torch.onnx.export(
        network.eval(),
        (example,),
        input_names=["batch"],
        output_names=["logits", "activations"],
        dynamic_shapes={"batch": {0: faces}},
        dynamo=True,
        verbose=False,
    )
    if program is None:
        raise RuntimeError("torch.onnx.export returned no program")
    return program.model_proto.SerializeToString()


def _agrees(
    output: tuple[torch.Tensor, torch.Tensor], expected: tuple[torch.Tensor, torch.Tensor]
) -> bool:
    (logits, activations), (expected_logits, expected_activations) = output, expected
    return bool(
        torch.allclose(
            logits, expected_logits, rtol=_LOGIT_RELATIVE_TOLERANCE, atol=_LOGIT_TOLERANCE
        )
        and torch.allclose(
            activations,
            expected_activations,
            rtol=_ACTIVATION_TOLERANCE,
            atol=_ACTIVATION_TOLERANCE,
        )
    )
