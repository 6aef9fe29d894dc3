"""The analysis pipeline's configuration, read from Django settings."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from detection.ml.config import PipelineConfig
from detection.ml.quality import QualityThresholds


def pipeline_config_from_settings() -> PipelineConfig:
    return PipelineConfig(
        checkpoint=Path(settings.DEEPFAKE_CHECKPOINT),
        min_face_size=settings.FACE_MIN_SIZE,
        detection_threshold=settings.FACE_DETECTION_THRESHOLD,
        flag_threshold=settings.FLAG_THRESHOLD,
        uncertain_threshold=settings.UNCERTAIN_THRESHOLD,
        detect_max_side=settings.DETECT_MAX_SIDE,
        num_threads=settings.TORCH_NUM_THREADS,
        device=settings.DEEPFAKE_DEVICE,
        runtime=settings.DEEPFAKE_RUNTIME,
        model_cache_dir=Path(settings.DEEPFAKE_MODEL_CACHE),
        quality=QualityThresholds(
            min_size_px=settings.FACE_QUALITY_MIN_SIZE,
            min_sharpness=settings.FACE_QUALITY_MIN_SHARPNESS,
            max_yaw=settings.FACE_QUALITY_MAX_YAW,
            min_detection=settings.FACE_QUALITY_MIN_DETECTION,
        ),
    )
