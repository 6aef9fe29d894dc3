"""Analyse one video: sampled frames, every face, tracks of people, a P(fake) timeline each.

The clip is decoded once. On each sampled frame the image pipeline's detector finds the
faces and their quality is measured; each face joins a track at once (detection.ml.tracking)
and waits for the classifier, which scores faces in batches across frames. Memory stays
bounded by the number of people, not the length of the clip: a track keeps the crop,
activations and (reduced) frame of only its most suspicious face so far.

A track is judged when enough of its frames are of good quality; its P(fake) is the upper
half mean of those frames (see tracking.upper_half_mean). The clip's verdict follows its
most suspicious judged track; tracks too brief or too poor to judge are shown and decide
nothing, like low-quality faces in a photo.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from PIL import Image

from detection.ml.classifier import ModelInfo
from detection.ml.faces import CROP_SIZE, clip_box
from detection.ml.gradcam import grad_cam_maps
from detection.ml.pipeline import INCONCLUSIVE, Analyzer, FaceResult, verdict_for
from detection.ml.quality import FaceQuality, QualityReason, face_quality
from detection.ml.render import FaceLabel, annotated_image, crop_image, heatmap_overlay
from detection.ml.tracking import TrackingRules, TrackLinker, appearance_embedding, upper_half_mean
from detection.ml.video import (
    UnreadableVideoError,
    VideoLimits,
    VideoSource,
    open_video,
    probe_video,
    sample_times,
    sampled_frames,
)

# Faces scored per classifier call: large enough to keep the CPU's vector units busy,
# small enough that a batch's crops and activations stay a few megabytes.
CLASSIFY_BATCH = 32
# Frames are kept (for the overlay) at most this long: a 1080p frame as it is.
FRAME_KEEP_MAX_SIDE = 1920

ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class VideoSampling:
    per_second: float = 2.0
    max_samples: int = 120
    min_track_frames: int = 3  # good-quality frames a track needs to be judged


@dataclass(frozen=True)
class TrackResult:
    index: int  # 1-based, in order of first appearance; the label on the overlay
    frames: int  # sampled frames the person appears in
    good_frames: int  # of those, faces good enough to judge
    judged: bool  # enough good frames to count towards the verdict
    fake_probability: float  # the upper-half mean of the judged frames (all, if not judged)
    timeline: list[tuple[float, float]]  # (seconds, P(fake)) for every frame it appears in
    first_s: float
    last_s: float
    worst_frame_s: float
    worst: FaceResult  # the face on its most suspicious frame, with crop and heatmap


@dataclass(frozen=True)
class VideoAnalysisResult:
    status: str  # 'ok' | 'no_face'
    verdict: str | None  # from the most suspicious judged track; as for images
    fake_probability: float | None  # that track's P(fake)
    tracks: list[TrackResult]
    overlay: Image.Image  # the most suspicious frame with every face boxed (a frame if none)
    model: ModelInfo
    timings_ms: dict[str, float]
    duration_s: float
    frames_analysed: int
    width: int
    height: int


@dataclass
class _Face:
    sample: int
    time_s: float
    box: tuple[float, float, float, float]
    detection_probability: float
    landmarks: list[tuple[float, float]]
    quality: FaceQuality
    track: int
    crop: np.ndarray | None  # uint8 (3, 160, 160); dropped once it cannot be a track's worst
    probability: float = math.nan
    activations: np.ndarray | None = None

    def kept_crop(self) -> np.ndarray:
        if self.crop is None:
            raise RuntimeError("the crop of a track's most suspicious face was dropped")
        return self.crop

    def kept_activations(self) -> np.ndarray:
        if self.activations is None:
            raise RuntimeError("the face was never scored")
        return self.activations


@dataclass
class _TrackState:
    faces: list[_Face] = field(default_factory=list)
    worst_good: _Face | None = None  # most suspicious face of good quality
    worst_any: _Face | None = None  # most suspicious face of any quality

    def good_frames(self) -> int:
        return sum(face.quality.ok for face in self.faces)

    def worst(self, *, judged: bool) -> _Face:
        """The face shown for the track: the most suspicious of those that were counted."""
        face = self.worst_good if judged else self.worst_any
        if face is None:
            raise RuntimeError("a track's faces were never scored")
        return face


class _Clock:
    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.laps: dict[str, float] = {}

    def add(self, name: str, since: float) -> float:
        now = time.perf_counter()
        self.laps[name] = self.laps.get(name, 0.0) + 1000 * (now - since)
        return now

    def timings(self) -> dict[str, float]:
        return {**self.laps, "total": 1000 * (time.perf_counter() - self.start)}


def analyze_video(
    analyzer: Analyzer,
    source: VideoSource,
    *,
    demuxer: str,
    sampling: VideoSampling,
    limits: VideoLimits,
    duration_s: float | None = None,
    on_progress: ProgressCallback | None = None,
    rules: TrackingRules | None = None,
) -> VideoAnalysisResult:
    """Raises UnreadableVideoError for a clip that cannot be decoded or exceeds `limits`.

    `duration_s`: the clip's length as measured at upload (from its packets), which wins
    over what the container says and stands in when it says nothing.
    """
    return _VideoAnalysis(analyzer, sampling, rules).run(
        source, demuxer, limits, on_progress, duration_s
    )


class _VideoAnalysis:
    def __init__(
        self, analyzer: Analyzer, sampling: VideoSampling, rules: TrackingRules | None
    ) -> None:
        self.analyzer = analyzer
        self.sampling = sampling
        self.linker = TrackLinker(rules)
        self.tracks: list[_TrackState] = []
        self.samples: list[tuple[float, list[_Face]]] = []  # time, faces of each sample
        # Reduced copies of the frames still needed, with their scale from the original.
        self.frames: dict[int, tuple[Image.Image, float]] = {}
        self.pending: list[_Face] = []  # detected, not yet scored
        self.clock = _Clock()

    def run(
        self,
        source: VideoSource,
        demuxer: str,
        limits: VideoLimits,
        on_progress: ProgressCallback | None,
        measured_duration: float | None,
    ) -> VideoAnalysisResult:
        started = self.clock.start
        with open_video(source, demuxer) as container:
            probe = probe_video(container)
            duration = measured_duration or probe.duration_s
            if not duration and probe.frame_count and probe.frame_rate:
                duration = probe.frame_count / probe.frame_rate
            if not duration:
                raise UnreadableVideoError("the video does not say how long it is")
            times = sample_times(
                duration, per_second=self.sampling.per_second, max_samples=self.sampling.max_samples
            )
            if on_progress:
                on_progress(0, len(times))
            size = (probe.width, probe.height)
            mark = self.clock.add("open", started)
            for frame in sampled_frames(
                container,
                times=times,
                limits=limits,
                threads=torch.get_num_threads(),
            ):
                mark = self.clock.add("decode", mark)
                size = frame.image.size
                self._detect(frame.index, frame.time_s, frame.image)
                if len(self.pending) >= CLASSIFY_BATCH:
                    mark = self.clock.add("detect", mark)
                    self._classify()
                    mark = self.clock.add("classify", mark)
                else:
                    mark = self.clock.add("detect", mark)
                if on_progress:
                    on_progress(len(self.samples), len(times))
        if not self.samples:
            raise UnreadableVideoError("no frame of the video could be decoded")
        self._classify()
        mark = self.clock.add("classify", mark)
        return self._result(duration, size, mark)

    def _detect(self, sample: int, time_s: float, image: Image.Image) -> None:
        analyzer = self.analyzer
        detected = analyzer.detector.detect(image)
        views = analyzer.face_crops(image, detected)
        crops = views.model.numpy()
        track_numbers = self.linker.link(
            sample,
            [face.box for face in detected],
            np.stack([appearance_embedding(crop) for crop in crops])
            if len(crops)
            else np.zeros((0, 1)),
        )
        faces = []
        for face, crop, whole, number in zip(
            detected, crops, views.whole.numpy(), track_numbers, strict=True
        ):
            while number >= len(self.tracks):
                self.tracks.append(_TrackState())
            record = _Face(
                sample=sample,
                time_s=time_s,
                box=clip_box(face.box, image.width, image.height),
                detection_probability=face.probability,
                landmarks=face.landmarks,
                quality=face_quality(
                    box=face.box,
                    landmarks=face.landmarks,
                    crop=whole,
                    detection_probability=face.probability,
                    thresholds=analyzer.quality_thresholds,
                ),
                track=number,
                crop=np.clip(np.rint(crop), 0, 255).astype(np.uint8),
            )
            self.tracks[number].faces.append(record)
            faces.append(record)
        self.samples.append((time_s, faces))
        self.pending.extend(faces)
        if faces or sample == 0:
            # The first frame stands in for the overlay when no face is ever found.
            reduced = _reduced(image)
            self.frames[sample] = (reduced, reduced.width / image.width)

    def _classify(self) -> None:
        if not self.pending:
            return
        batch = self.pending
        self.pending = []
        scored = self.analyzer.classifier.classify(
            torch.from_numpy(np.stack([face.crop for face in batch if face.crop is not None]))
        )
        for face, probability, activations in zip(
            batch, scored.probabilities, scored.activations, strict=True
        ):
            face.probability = float(probability)
            face.activations = activations
            track = self.tracks[face.track]
            if face.quality.ok and (
                track.worst_good is None or face.probability > track.worst_good.probability
            ):
                track.worst_good = face
            if track.worst_any is None or face.probability > track.worst_any.probability:
                track.worst_any = face
        self._forget_what_no_track_needs()

    def _forget_what_no_track_needs(self) -> None:
        kept = {
            id(face)
            for track in self.tracks
            for face in (track.worst_good, track.worst_any)
            if face is not None
        }
        kept_samples = {0} | {face.sample for face in self.pending}
        for track in self.tracks:
            for face in track.faces:
                if id(face) in kept:
                    kept_samples.add(face.sample)
                elif not math.isnan(face.probability):
                    face.crop = None
                    face.activations = None
        for sample in list(self.frames):
            if sample not in kept_samples:
                del self.frames[sample]

    def _result(self, duration: float, size: tuple[int, int], mark: float) -> VideoAnalysisResult:
        model = self.analyzer.model
        # A clip sampled fewer times than the rule asks for can still be judged on them all.
        required = max(1, min(self.sampling.min_track_frames, len(self.samples)))
        judged = [track.good_frames() >= required for track in self.tracks]
        worst_faces = [
            track.worst(judged=is_judged)
            for track, is_judged in zip(self.tracks, judged, strict=True)
        ]
        cams: np.ndarray | list[np.ndarray] = (
            grad_cam_maps(
                np.stack([face.kept_activations() for face in worst_faces]),
                self.analyzer.classifier.cam_gradient,
                CROP_SIZE,
            )
            if worst_faces
            else []
        )
        mark = self.clock.add("explain", mark)
        results = [
            _track_result(position + 1, track, worst, cam, is_judged)
            for position, (track, worst, cam, is_judged) in enumerate(
                zip(self.tracks, worst_faces, cams, judged, strict=True)
            )
        ]
        top = max(
            (track for track in results if track.judged),
            key=lambda track: track.fake_probability,
            default=None,
        )
        if top is not None:
            verdict: str | None = verdict_for(top.fake_probability, model)
        else:
            verdict = INCONCLUSIVE if results else None
        # The overlay shows the track behind the verdict, else the most suspicious one.
        shown = top or max(results, key=lambda track: track.fake_probability, default=None)
        overlay = (
            self._overlay(worst_faces[shown.index - 1], model)
            if shown is not None
            else self.frames[0][0]
        )
        self.clock.add("render", mark)
        return VideoAnalysisResult(
            status="ok" if results else "no_face",
            verdict=verdict,
            fake_probability=top.fake_probability if top else None,
            tracks=results,
            overlay=overlay,
            model=model,
            timings_ms=self.clock.timings(),
            duration_s=duration,
            frames_analysed=len(self.samples),
            width=size[0],
            height=size[1],
        )

    def _overlay(self, worst: _Face, model: ModelInfo) -> Image.Image:
        """The frame of `worst` with every face on it boxed, labelled by its track."""
        frame, scale = self.frames[worst.sample]
        _, faces = self.samples[worst.sample]
        labels = [
            FaceLabel(
                face.track + 1,
                (
                    face.box[0] * scale,
                    face.box[1] * scale,
                    face.box[2] * scale,
                    face.box[3] * scale,
                ),
                verdict_for(face.probability, model) if face.quality.ok else INCONCLUSIVE,
                face.probability,
            )
            for face in faces
        ]
        return annotated_image(frame, labels)


def _track_result(
    index: int, track: _TrackState, worst: _Face, cam: np.ndarray, judged: bool
) -> TrackResult:
    counted = [face for face in track.faces if face.quality.ok] if judged else track.faces
    crop = worst.kept_crop().astype(np.float32)
    quality = worst.quality
    if not judged and quality.ok:
        # A good face on too few frames: shown, but like a poor face it decides nothing.
        quality = replace(quality, reasons=[QualityReason.TOO_BRIEF])
    return TrackResult(
        index=index,
        frames=len(track.faces),
        good_frames=track.good_frames(),
        judged=judged,
        fake_probability=upper_half_mean([face.probability for face in counted]),
        timeline=[(face.time_s, face.probability) for face in track.faces],
        first_s=track.faces[0].time_s,
        last_s=track.faces[-1].time_s,
        worst_frame_s=worst.time_s,
        worst=FaceResult(
            index=index,
            box=worst.box,
            detection_probability=worst.detection_probability,
            landmarks=worst.landmarks,
            fake_probability=worst.probability,
            quality=quality,
            crop=crop_image(crop),
            heatmap=heatmap_overlay(crop, cam),
        ),
    )


def _reduced(image: Image.Image) -> Image.Image:
    factor = math.ceil(max(image.size) / FRAME_KEEP_MAX_SIDE)
    return image.reduce(factor) if factor > 1 else image.copy()
