"""The pipeline's settings: light to import (no torch), so Django code can build one freely."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from detection.ml.quality import QualityThresholds

RUNTIMES = ("torch", "onnxruntime")  # where the classifier runs; see detection.ml.runtime


@dataclass(frozen=True)
class PipelineConfig:
    checkpoint: Path
    min_face_size: int = 40
    detection_threshold: float = 0.95  # minimum MTCNN probability to keep a face
    flag_threshold: float = 0.5  # P(fake) >= this → 'fake'
    uncertain_threshold: float = 0.3  # P(fake) >= this → 'uncertain'
    detect_max_side: int = 1024
    num_threads: int | None = None  # None: the physical cores this process may use
    device: str = "cpu"  # "cuda" when available and asked for
    runtime: str = "torch"  # or "onnxruntime": the classifier in ONNX Runtime (CPU only)
    model_cache_dir: Path | None = None  # where onnxruntime keeps its exported graphs
    quality: QualityThresholds = field(default_factory=QualityThresholds)

    def __post_init__(self) -> None:
        if not 0 <= self.uncertain_threshold <= self.flag_threshold <= 1:
            raise ValueError("thresholds must satisfy 0 <= uncertain <= flag <= 1")
        if not 0 <= self.detection_threshold <= 1:
            raise ValueError("detection_threshold must be between 0 and 1")
        if self.min_face_size < 1 or self.detect_max_side < 1:
            raise ValueError("min_face_size and detect_max_side must be positive")
        if self.num_threads is not None and self.num_threads < 1:
            raise ValueError("num_threads must be positive")
        if self.runtime not in RUNTIMES:
            raise ValueError(f"runtime must be 'torch' or 'onnxruntime', not {self.runtime!r}")
        if self.runtime == "onnxruntime" and self.device != "cpu":
            raise ValueError("the onnxruntime runtime runs on the CPU only; use torch on a GPU")
        if self.runtime == "onnxruntime" and self.model_cache_dir is None:
            raise ValueError("the onnxruntime runtime needs a model_cache_dir for its graphs")
