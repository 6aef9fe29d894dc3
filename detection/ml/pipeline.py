"""Analyse one image: every face found, scored and explained (the public entry point)."""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from detection.ml.classifier import FaceClassifier, ModelInfo, load_checkpoint
from detection.ml.config import PipelineConfig
from detection.ml.faces import (
    CROP_SIZE,
    DetectedFace,
    FaceCrops,
    FaceDetector,
    clip_box,
    face_crops,
)
from detection.ml.gradcam import grad_cam_maps
from detection.ml.images import ImageSource, load_rgb_image
from detection.ml.quality import FaceQuality, face_quality
from detection.ml.render import FaceLabel, annotated_image, crop_image, heatmap_overlay
from detection.ml.runtime import OnnxOptions, onnx_graph_path

__all__ = [
    "AnalysisResult",
    "Analyzer",
    "FaceResult",
    "ModelInfo",
    "PipelineConfig",
    "face_verdict",
    "get_analyzer",
    "verdict_for",
]


INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class FaceResult:
    index: int  # 1-based, most probable face first; the label drawn on the overlay
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in original pixels
    detection_probability: float
    landmarks: list[tuple[float, float]]  # eyes, nose, mouth corners in original pixels
    fake_probability: float
    quality: FaceQuality  # only faces of good quality decide the verdict
    crop: Image.Image  # the 160x160 crop the classifier saw (before its resize)
    heatmap: Image.Image  # Grad-CAM over the crop


@dataclass(frozen=True)
class AnalysisResult:
    status: str  # 'ok' | 'no_face'
    # 'fake' | 'uncertain' | 'real' from the good faces; 'inconclusive' when every face is
    # too small, blurred, turned away or uncertain to judge; None without a face.
    verdict: str | None
    fake_probability: float | None  # the most suspicious good face's P(fake)
    faces: list[FaceResult]
    overlay: Image.Image  # the image, at most OVERLAY_MAX_SIDE long, every face boxed
    model: ModelInfo
    timings_ms: dict[str, float]  # decode, detect, classify, explain, render, total
    width: int
    height: int


def face_verdict(face: FaceResult, model: ModelInfo) -> str:
    return verdict_for(face.fake_probability, model) if face.quality.ok else INCONCLUSIVE


def verdict_for(probability: float, model: ModelInfo) -> str:
    if probability >= model.flag_threshold:
        return "fake"
    if probability >= model.uncertain_threshold:
        return "uncertain"
    return "real"


class Analyzer:
    """Holds the loaded models; build it through `get_analyzer` so a process loads them once."""

    def __init__(self, config: PipelineConfig) -> None:
        threads = config.num_threads or available_physical_cores()
        torch.set_num_threads(threads)
        device = torch.device(config.device)
        checkpoint = load_checkpoint(config.checkpoint)
        self.model: ModelInfo = checkpoint.model_info(
            flag_threshold=config.flag_threshold, uncertain_threshold=config.uncertain_threshold
        )
        self.quality_thresholds = config.quality
        self.crop_top_cut = checkpoint.crop_top_cut
        self.detector = FaceDetector(
            min_face_size=config.min_face_size,
            probability_threshold=config.detection_threshold,
            max_side=config.detect_max_side,
            device=device,
        )
        onnx = None
        if config.runtime == "onnxruntime" and config.model_cache_dir is not None:
            graph_path = onnx_graph_path(
                config.model_cache_dir,
                version=checkpoint.version,
                input_size=checkpoint.input_size,
            )
            onnx = OnnxOptions(graph_path=graph_path, num_threads=threads)
        self.classifier = FaceClassifier(
            checkpoint.state_dict,
            network=checkpoint.network,
            input_size=checkpoint.input_size,
            calibration=checkpoint.calibration,
            device=device,
            onnx=onnx,
            mirror_average=checkpoint.mirror_average,
        )

    def face_crops(self, image: Image.Image, faces: list[DetectedFace]) -> FaceCrops:
        """What the model sees of each face (its card may cut the box) and the whole box."""
        return face_crops(image, [face.box for face in faces], top_cut=self.crop_top_cut)

    def analyze(self, image: ImageSource) -> AnalysisResult:
        """Raises UnreadableImageError for input that is not an image; no face is a result."""
        clock = _Stopwatch()
        picture = load_rgb_image(image)
        clock.lap("decode")
        detected = self.detector.detect(picture)
        crops = self.face_crops(picture, detected)
        clock.lap("detect")
        if detected:
            scored = self.classifier.classify(crops.model)
            probabilities = scored.probabilities
            clock.lap("classify")
            cams = grad_cam_maps(scored.activations, self.classifier.cam_gradient, CROP_SIZE)
            clock.lap("explain")
        else:
            probabilities = np.zeros(0)
            cams = np.zeros((0, CROP_SIZE, CROP_SIZE), dtype=np.float32)
            clock.lap("classify")
            clock.lap("explain")

        crop_values = crops.model.numpy()
        faces = [
            FaceResult(
                index=position + 1,
                box=clip_box(face.box, picture.width, picture.height),
                detection_probability=face.probability,
                landmarks=face.landmarks,
                fake_probability=float(probability),
                quality=face_quality(
                    box=face.box,
                    landmarks=face.landmarks,
                    crop=whole,
                    detection_probability=face.probability,
                    thresholds=self.quality_thresholds,
                ),
                crop=crop_image(crop),
                heatmap=heatmap_overlay(crop, cam),
            )
            for position, (face, probability, crop, whole, cam) in enumerate(
                zip(detected, probabilities, crop_values, crops.whole.numpy(), cams, strict=True)
            )
        ]
        overlay = annotated_image(
            picture,
            [
                FaceLabel(
                    face.index, face.box, face_verdict(face, self.model), face.fake_probability
                )
                for face in faces
            ],
        )
        clock.lap("render")
        judged = [face for face in faces if face.quality.ok]
        top = max(judged, key=lambda face: face.fake_probability, default=None)
        if top is not None:
            verdict: str | None = verdict_for(top.fake_probability, self.model)
        else:
            verdict = INCONCLUSIVE if faces else None
        return AnalysisResult(
            status="ok" if faces else "no_face",
            verdict=verdict,
            fake_probability=top.fake_probability if top else None,
            faces=faces,
            overlay=overlay,
            model=self.model,
            timings_ms=clock.timings(),
            width=picture.width,
            height=picture.height,
        )


@functools.cache
def get_analyzer(config: PipelineConfig) -> Analyzer:
    """One Analyzer per configuration and process: the models load on first use only."""
    return Analyzer(config)


def available_physical_cores() -> int:
    """Physical cores this process may run on, capped by a cgroup CPU quota.

    A Celery worker child that used every hyper-thread, or more threads than its container's
    quota, would only make the threads fight over the same execution units.
    """
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    cores = set()
    for cpu in cpus:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            package = (topology / "physical_package_id").read_text().strip()
            core = (topology / "core_id").read_text().strip()
        except OSError:
            cores.add(str(cpu))
            continue
        cores.add(f"{package}:{core}")
    count = len(cores) or os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    return max(1, min(count, quota)) if quota else count


def _cgroup_cpu_quota() -> int | None:
    try:
        limit, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
    except (OSError, ValueError):
        return None
    if limit == "max":
        return None
    return max(1, -(-int(limit) // int(period)))


class _Stopwatch:
    def __init__(self) -> None:
        self._start = self._last = time.perf_counter()
        self._laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self._laps[name] = 1000 * (now - self._last)
        self._last = now

    def timings(self) -> dict[str, float]:
        return {**self._laps, "total": 1000 * (self._last - self._start)}
