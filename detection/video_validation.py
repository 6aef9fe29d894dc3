"""Turn an uploaded clip into a clean stored copy and a poster, or reject it with a reason.

Pure PyAV and Pillow, no Django, like `validation` for photos. The container is recognised
from its first bytes and opened with that demuxer only; the container, codec, duration,
frame size and frame count are checked from its headers before anything is decoded. The
stored copy is re-muxed (packets copied, not re-encoded) into a fresh container that keeps
only the video and one playable audio stream: the container's and the streams' metadata
(title, GPS location, creation time, camera, editing software) are left behind. Demuxing
every packet also measures the real frame count and length, which the headers may
understate, and finds a file cut short. The poster is one decoded frame, re-encoded as JPEG.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from fractions import Fraction
from typing import IO

import av
from av.container import InputContainer
from PIL import Image

from detection.ml.video import UnreadableVideoError, open_video, probe_video, upright_image
from detection.validation import (
    THUMBNAIL_SIZE,
    RejectionCode,
    UploadRejected,
    too_large_message,
)

# Major brands of the ISO format that hold still images (HEIF, AVIF): not clips, so they
# are left to the photo validation, which says which photo formats it takes.
_IMAGE_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevm", b"hevs", b"mif1"}
_IMAGE_BRANDS |= {b"msf1", b"avif", b"avis"}
_EBML_MAGIC = b"\x1a\x45\xdf\xa3"
# How far a clip's packets may end before the length its container declares (a few frames,
# or audio ending early) before the file counts as cut short.
_TRUNCATION_TOLERANCE_S = 0.5
_TRUNCATION_TOLERANCE_SHARE = 0.05
POSTER_QUALITY = 90


@dataclass(frozen=True)
class VideoContainer:
    name: str  # what the uploader sent: MP4, MOV or WEBM
    demuxer: str
    codecs: frozenset[str]  # video codecs accepted in it (FFmpeg decoder names)
    stored_format: str  # what is stored: a container every browser plays
    muxer: str
    extension: str
    content_type: str
    audio_codecs: frozenset[str]  # audio kept in the stored copy; any other is dropped


_MP4 = dict(muxer="mp4", extension="mp4", content_type="video/mp4", stored_format="MP4")
CONTAINERS = {
    "MP4": VideoContainer(
        name="MP4",
        demuxer="mp4",
        codecs=frozenset({"h264"}),
        audio_codecs=frozenset({"aac", "mp3"}),
        **_MP4,
    ),
    # QuickTime holds the same H.264 as MP4; re-muxed into MP4 it plays in every browser.
    "MOV": VideoContainer(
        name="MOV",
        demuxer="mov",
        codecs=frozenset({"h264"}),
        audio_codecs=frozenset({"aac", "mp3"}),
        **_MP4,
    ),
    "WEBM": VideoContainer(
        name="WEBM",
        demuxer="webm",
        codecs=frozenset({"vp8", "vp9"}),
        audio_codecs=frozenset({"opus", "vorbis"}),
        muxer="webm",
        extension="webm",
        content_type="video/webm",
        stored_format="WEBM",
    ),
}
# The stored copy's format → the demuxer that reads it back.
STORED_DEMUXERS = {"MP4": "mp4", "WEBM": "webm"}
ACCEPTED_CONTENT_TYPES = ("video/mp4", "video/webm", "video/quicktime")


@dataclass(frozen=True)
class VideoUploadLimits:
    max_bytes: int
    max_seconds: float
    max_pixels: int  # of one frame
    max_frames: int


@dataclass(frozen=True)
class ValidatedVideo:
    container: VideoContainer
    codec: str
    width: int  # of the upright picture
    height: int
    duration_s: float
    frame_count: int
    poster: bytes  # one frame as JPEG, at full size
    thumbnail: bytes  # the poster, small, as JPEG


def video_container_of(head: bytes) -> VideoContainer | None:
    """The container the first bytes announce, or None when they are not a clip we take."""
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _IMAGE_BRANDS:
            return None
        return CONTAINERS["MOV"] if brand == b"qt  " else CONTAINERS["MP4"]
    if head[:4] == _EBML_MAGIC:
        return CONTAINERS["WEBM"]
    return None


def validate_video_upload(
    source: IO[bytes],
    *,
    size: int,
    container: VideoContainer,
    limits: VideoUploadLimits,
    output_path: str,
) -> ValidatedVideo:
    """Check the clip in `source` and write its clean copy to `output_path`.

    Raises UploadRejected when the clip is refused; `output_path` is then to be discarded.
    """
    if size > limits.max_bytes:
        raise UploadRejected(RejectionCode.FILE_TOO_LARGE, too_large_message(limits.max_bytes))
    try:
        with open_video(source, container.demuxer) as opened:
            codec = _check_headers(opened, container, limits)
            frame_count, duration = _remux(opened, container, limits, output_path)
        with open_video(output_path, STORED_DEMUXERS[container.stored_format]) as stored:
            poster = _poster(stored, duration, limits)
    except UnreadableVideoError:
        raise _corrupt() from None
    width, height = poster.size
    poster_jpeg = _jpeg(poster, quality=POSTER_QUALITY)
    poster.thumbnail(THUMBNAIL_SIZE)
    return ValidatedVideo(
        container=container,
        codec=codec,
        width=width,
        height=height,
        duration_s=duration,
        frame_count=frame_count,
        poster=poster_jpeg,
        thumbnail=_jpeg(poster, quality=85),
    )


def _check_headers(
    opened: InputContainer, container: VideoContainer, limits: VideoUploadLimits
) -> str:
    """Refuse from the headers alone what must not be decoded; the codec's name back."""
    try:
        probe = probe_video(opened)
    except UnreadableVideoError:
        raise UploadRejected(
            RejectionCode.NO_VIDEO_STREAM, "The file holds no video track."
        ) from None
    if probe.codec not in container.codecs:
        accepted = " or ".join(sorted(codec.upper() for codec in container.codecs))
        raise UploadRejected(
            RejectionCode.UNSUPPORTED_VIDEO_CODEC,
            f"This {container.name} video is encoded as {probe.codec.upper()}; "
            f"{container.name} videos are accepted in {accepted}.",
        )
    if probe.width * probe.height > limits.max_pixels:
        raise UploadRejected(
            RejectionCode.TOO_MANY_PIXELS,
            f"The video's frames are {probe.width} x {probe.height} pixels; the limit is "
            f"{limits.max_pixels / 1_000_000:g} megapixels.",
        )
    if probe.duration_s is not None:
        _check_length(probe.duration_s, limits)
    if probe.frame_count is not None:
        _check_frames(probe.frame_count, limits)
    return probe.codec


def _check_length(seconds: float, limits: VideoUploadLimits) -> None:
    if seconds > limits.max_seconds:
        raise UploadRejected(
            RejectionCode.VIDEO_TOO_LONG,
            f"The video lasts {seconds:.0f} s; the limit is {limits.max_seconds:g} s.",
        )


def _check_frames(frames: int, limits: VideoUploadLimits) -> None:
    if frames > limits.max_frames:
        raise UploadRejected(
            RejectionCode.TOO_MANY_FRAMES,
            f"The video has {frames:,} frames; the limit is {limits.max_frames:,}.",
        )


def _remux(
    opened: InputContainer, container: VideoContainer, limits: VideoUploadLimits, path: str
) -> tuple[int, float]:
    """Copy the video (and one playable audio stream) into a container without metadata.

    Returns the video's packet count (one packet a frame) and its length in seconds, as
    measured; raises UploadRejected when either passes the limits or the file is cut short.
    """
    video = opened.streams.video[0]
    playable = container.audio_codecs
    audio = next(
        (stream for stream in opened.streams.audio if stream.codec_context.name in playable), None
    )
    kept = [stream for stream in (video, audio) if stream is not None]
    origin = Fraction(opened.start_time or 0, av.time_base)
    frames = 0
    video_end = Fraction(0)
    any_end = Fraction(0)
    options = {"movflags": "+faststart"} if container.muxer == "mp4" else {}
    try:
        with av.open(path, mode="w", format=container.muxer, options=options) as output:
            targets = {stream.index: output.add_stream_from_template(stream) for stream in kept}
            for packet in opened.demux(*kept):
                if packet.dts is None:
                    continue  # the demuxer's end-of-stream marker
                end = _packet_end(packet) - origin
                any_end = max(any_end, end)
                if packet.stream.index == video.index:
                    frames += 1
                    video_end = max(video_end, end)
                    _check_frames(frames, limits)
                    _check_length(float(video_end), limits)
                packet.stream = targets[packet.stream.index]
                output.mux(packet)
    except av.FFmpegError:
        raise _corrupt() from None
    if not frames:
        raise _corrupt()
    declared_frames = video.frames
    declared = _declared_seconds(opened)
    if declared_frames and frames < declared_frames:
        raise _corrupt()
    if not declared_frames and declared is not None:
        tolerance = max(_TRUNCATION_TOLERANCE_S, _TRUNCATION_TOLERANCE_SHARE * declared)
        if float(any_end) < declared - tolerance:
            raise _corrupt()
    return frames, float(video_end)


def _packet_end(packet: av.Packet) -> Fraction:
    start = packet.pts if packet.pts is not None else packet.dts
    if start is None or packet.time_base is None:
        return Fraction(0)
    return (start + (packet.duration or 0)) * packet.time_base


def _declared_seconds(opened: InputContainer) -> float | None:
    return float(Fraction(opened.duration, av.time_base)) if opened.duration else None


def _poster(stored: InputContainer, duration: float, limits: VideoUploadLimits) -> Image.Image:
    """The frame a tenth of the way in: past a fade from black, early enough to be cheap."""
    stream = stored.streams.video[0]
    target = duration / 10
    try:
        if target > 0 and stream.time_base:
            stored.seek(int(target / stream.time_base), stream=stream, backward=True)
        frame = next(stored.decode(stream), None)
    except av.FFmpegError:
        raise _corrupt() from None
    if frame is None:
        raise _corrupt()
    if frame.width * frame.height > limits.max_pixels:
        raise UploadRejected(
            RejectionCode.TOO_MANY_PIXELS,
            f"The video's frames are {frame.width} x {frame.height} pixels; the limit is "
            f"{limits.max_pixels / 1_000_000:g} megapixels.",
        )
    return upright_image(frame)


def _jpeg(image: Image.Image, *, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _corrupt() -> UploadRejected:
    return UploadRejected(
        RejectionCode.CORRUPT_VIDEO,
        "The video is damaged or incomplete and cannot be read to the end.",
    )
