"""Video containers for the pipeline: what a clip declares, and the frames to analyse.

Pure PyAV (FFmpeg's libraries, bundled in the `av` wheel: no system ffmpeg), no Django. The
demuxer is always named by the caller, never guessed: FFmpeg's probing would also accept
formats that open other files or URLs (an HLS playlist, a concat script).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import IO

import av
from av.container import InputContainer
from av.video.frame import VideoFrame
from av.video.stream import VideoStream
from PIL import Image

VideoSource = str | IO[bytes]

# The display-matrix rotations (counter-clockwise, as PyAV reports them) that turn stored
# pixels upright; phones record portrait clips as landscape pixels plus a rotation.
_UPRIGHT_TURNS = {
    90: Image.Transpose.ROTATE_90,
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_270,
}


class UnreadableVideoError(ValueError):
    """The clip cannot be decoded, or decodes into more than its limits allow. Trying again
    gives the same answer, so the analysis fails at once."""


@dataclass(frozen=True)
class VideoLimits:
    max_seconds: float
    max_pixels: int  # width x height of one frame
    max_frames: int


@dataclass(frozen=True)
class VideoProbe:
    """What the container says about its first video stream, read without decoding."""

    codec: str  # FFmpeg's decoder name: h264, vp8, vp9, ...
    width: int
    height: int
    duration_s: float | None  # None when the container does not say
    frame_count: int | None  # declared (MP4) or estimated from the duration and frame rate
    frame_rate: float | None
    brand: str  # the MP4/MOV `ftyp` major brand ('qt  ' for QuickTime); '' for Matroska


@dataclass(frozen=True)
class SampledFrame:
    index: int  # 0-based position among the sampled frames
    time_s: float  # the frame's own timestamp from the start of the clip
    image: Image.Image  # upright RGB


def open_video(source: VideoSource, demuxer: str) -> InputContainer:
    """Open with exactly this demuxer ('mp4' also reads MOV; 'webm' reads Matroska)."""
    try:
        return av.open(source, mode="r", format=demuxer)
    except (av.FFmpegError, OSError, ValueError, EOFError) as error:
        raise UnreadableVideoError(f"cannot open the video: {error}") from error


def probe_video(container: InputContainer) -> VideoProbe:
    if not container.streams.video:
        raise UnreadableVideoError("the file has no video stream")
    stream = container.streams.video[0]
    context = stream.codec_context
    duration = _declared_duration(container, stream)
    rate = stream.average_rate or stream.guessed_rate
    frame_rate = float(rate) if rate else None
    frame_count = stream.frames or None
    if frame_count is None and duration is not None and frame_rate is not None:
        frame_count = math.ceil(duration * frame_rate)
    return VideoProbe(
        codec=context.name,
        width=context.width,
        height=context.height,
        duration_s=duration,
        frame_count=frame_count,
        frame_rate=frame_rate,
        brand=str(container.metadata.get("major_brand", "")),
    )


def sample_times(duration_s: float, *, per_second: float, max_samples: int) -> list[float]:
    """When to look: `per_second` frames a second, at most `max_samples`, spread evenly.

    Each sample sits in the middle of its equal share of the clip, so a long clip is covered
    from start to end rather than only its first minute.
    """
    count = max(1, min(max_samples, math.floor(duration_s * per_second)))
    step = duration_s / count
    return [step * (position + 0.5) for position in range(count)]


def sampled_frames(
    container: InputContainer, *, times: list[float], limits: VideoLimits, threads: int
) -> Iterator[SampledFrame]:
    """The frame on screen at each of `times`, decoded in one pass, upright.

    A frame that is on screen at two sample times is yielded once (a slideshow at one frame
    a second sampled twice a second), so every yielded frame is a different picture. Raises
    UnreadableVideoError when decoding fails or the stream exceeds `limits` as it decodes
    (the container's own figures were checked at upload, but they may understate).
    """
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    stream.codec_context.thread_count = threads
    origin = (
        float(stream.start_time * stream.time_base)
        if stream.start_time and stream.time_base
        else 0.0
    )
    fallback_rate = float(stream.average_rate or stream.guessed_rate or 25)
    pending = deque(times)
    previous: tuple[float, VideoFrame] | None = None
    last_yielded: VideoFrame | None = None
    index = 0
    decoded = 0
    try:
        for frame in container.decode(stream):
            decoded += 1
            time_s = max(0.0, frame.time - origin) if frame.time is not None else None
            if time_s is None:
                time_s = (decoded - 1) / fallback_rate
            _check_limits(frame, decoded, time_s, limits)
            while pending and time_s > pending[0]:
                pending.popleft()
                chosen_time, chosen = previous or (time_s, frame)
                if chosen is not last_yielded:
                    yield SampledFrame(index, chosen_time, upright_image(chosen))
                    last_yielded = chosen
                    index += 1
            if not pending:
                return  # every sample is taken: the rest of the clip need not be decoded
            previous = (time_s, frame)
    except av.FFmpegError as error:
        raise UnreadableVideoError(f"the video cannot be decoded: {error}") from error
    # The last frame stays on screen until the end of the clip.
    if pending and previous is not None and previous[1] is not last_yielded:
        yield SampledFrame(index, previous[0], upright_image(previous[1]))


def _check_limits(frame: VideoFrame, decoded: int, time_s: float, limits: VideoLimits) -> None:
    if frame.width * frame.height > limits.max_pixels:
        raise UnreadableVideoError(
            f"a frame of {frame.width} x {frame.height} pixels exceeds the limit"
        )
    if decoded > limits.max_frames:
        raise UnreadableVideoError(f"the video has more than {limits.max_frames} frames")
    if time_s > limits.max_seconds + 1:
        raise UnreadableVideoError(f"the video runs longer than {limits.max_seconds:g} s")


def upright_image(frame: VideoFrame) -> Image.Image:
    """The frame as RGB, turned as its display rotation says players show it."""
    image = frame.to_image()
    turn = _UPRIGHT_TURNS.get(round(frame.rotation) % 360)
    return image.transpose(turn) if turn is not None else image


def _declared_duration(container: InputContainer, stream: VideoStream) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return float(Fraction(container.duration, av.time_base))
    return None
