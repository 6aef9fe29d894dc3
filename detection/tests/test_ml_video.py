"""The video pipeline without Django: sampling, decoding, tracks, the per-track statistic."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import encode_clip
from detection.ml.pipeline import Analyzer
from detection.ml.tracking import (
    TrackingRules,
    TrackLinker,
    appearance_embedding,
    overlap,
    upper_half_mean,
)
from detection.ml.video import (
    UnreadableVideoError,
    VideoLimits,
    open_video,
    sample_times,
    sampled_frames,
)
from detection.ml.video_analysis import VideoSampling, analyze_video

NO_LIMITS = VideoLimits(max_seconds=600, max_pixels=10**8, max_frames=10**6)


def test_two_samples_a_second_spread_evenly_and_at_most_the_cap() -> None:
    assert sample_times(2.0, per_second=2, max_samples=120) == [0.25, 0.75, 1.25, 1.75]
    long = sample_times(180.0, per_second=2, max_samples=120)
    assert len(long) == 120
    assert long[0] == pytest.approx(0.75) and long[-1] == pytest.approx(179.25)
    gaps = np.diff(long)
    assert np.allclose(gaps, gaps[0]), "evenly spread over the whole clip"
    assert sample_times(0.2, per_second=2, max_samples=120) == [0.1], "a blink gets one"


def test_the_frame_on_screen_at_each_sample_time_is_decoded_once() -> None:
    clip = encode_clip(["real_frame_1"], seconds_each=2, fps=10)
    with open_video(io.BytesIO(clip), "mp4") as container:
        frames = list(
            sampled_frames(container, times=[0.25, 0.75, 1.25, 1.75], limits=NO_LIMITS, threads=1)
        )
    assert [frame.index for frame in frames] == [0, 1, 2, 3]
    # At 10 frames a second, the frame shown at 0.25 s is the one that started at 0.2 s.
    assert [round(frame.time_s, 2) for frame in frames] == [0.2, 0.7, 1.2, 1.7]
    assert all(frame.image.size == (960, 540) for frame in frames)


def test_a_frame_on_screen_at_two_sample_times_is_analysed_once() -> None:
    clip = encode_clip(["real_frame_1"], seconds_each=3, fps=1)
    with open_video(io.BytesIO(clip), "mp4") as container:
        frames = list(
            sampled_frames(
                container,
                times=sample_times(3.0, per_second=2, max_samples=120),
                limits=NO_LIMITS,
                threads=1,
            )
        )
    assert [frame.time_s for frame in frames] == [0.0, 1.0, 2.0]


def test_decoding_stops_at_the_limits_whatever_the_container_said() -> None:
    clip = encode_clip(["real_frame_1"], seconds_each=2, fps=10)
    for limits in (
        VideoLimits(max_seconds=600, max_pixels=10**8, max_frames=5),
        VideoLimits(max_seconds=600, max_pixels=320 * 240, max_frames=10**6),
    ):
        with (
            open_video(io.BytesIO(clip), "mp4") as container,
            pytest.raises(UnreadableVideoError),
        ):
            list(sampled_frames(container, times=[1.9], limits=limits, threads=1))


def test_a_file_that_is_not_a_video_cannot_be_opened() -> None:
    with pytest.raises(UnreadableVideoError):
        open_video(io.BytesIO(b"not a video at all" * 100), "mp4")


def box(x: float, y: float, size: float = 100) -> tuple[float, float, float, float]:
    return (x, y, x + size, y + size)


def unit(*values: float) -> np.ndarray:
    vector = np.array(values, dtype=float)
    return vector / np.linalg.norm(vector)


PERSON_A, PERSON_B = unit(1, 0, 0), unit(0, 1, 0)


def test_overlap_is_intersection_over_union() -> None:
    assert overlap(box(0, 0), box(0, 0)) == 1
    assert overlap(box(0, 0), box(50, 0)) == pytest.approx(50 / 150)
    assert overlap(box(0, 0), box(200, 0)) == 0


def test_a_person_moving_a_little_between_samples_stays_one_track() -> None:
    linker = TrackLinker()
    numbers = [
        linker.link(sample, [box(10 * sample, 0), box(500, 10 * sample)], np.stack([a, b]))
        for sample, (a, b) in enumerate([(PERSON_A, PERSON_B)] * 5)
    ]
    assert numbers == [[0, 1]] * 5
    assert linker.track_count == 2


def test_a_cut_to_another_person_in_the_same_place_starts_a_new_track() -> None:
    linker = TrackLinker()
    assert linker.link(0, [box(0, 0)], PERSON_A[None]) == [0]
    assert linker.link(1, [box(0, 0)], PERSON_B[None]) == [1]


def test_after_a_cut_the_same_person_elsewhere_rejoins_their_track() -> None:
    linker = TrackLinker()
    linker.link(0, [box(0, 0)], PERSON_A[None])
    linker.link(1, [box(600, 300)], PERSON_B[None])  # the cut: someone else
    assert linker.link(2, [box(300, 200)], unit(1, 0.05, 0)[None]) == [0]


def test_a_person_is_re_linked_only_when_one_track_clearly_matches() -> None:
    linker = TrackLinker(TrackingRules(relink_margin=0.05))
    linker.link(0, [box(0, 0), box(400, 0)], np.stack([unit(1, 0.1, 0), unit(1, 0, 0.1)]))
    # Far from both boxes and as like one as the other: a new track, not a guess.
    assert linker.link(5, [box(800, 400)], unit(1, 0.05, 0.05)[None]) == [2]


def test_two_faces_of_one_frame_never_share_a_track() -> None:
    linker = TrackLinker()
    linker.link(0, [box(0, 0)], PERSON_A[None])
    assert linker.link(1, [box(5, 0), box(10, 5)], np.stack([PERSON_A, PERSON_A])) == [0, 1]


def test_the_colour_embedding_tells_the_test_frames_people_apart(
    analyzer: Analyzer, samples_dir: Path
) -> None:
    from detection.ml.faces import crop_faces

    def embedding(name: str, shift: int = 0) -> np.ndarray:
        image = Image.open(samples_dir / f"{name}.jpg").convert("RGB")
        face = analyzer.detector.detect(image)[0]
        x1, y1, x2, y2 = face.box
        crop = crop_faces(image, [(x1 + shift, y1, x2 + shift, y2)])[0].numpy()
        return appearance_embedding(crop)

    same = float(embedding("real_frame_1") @ embedding("real_frame_1", shift=8))
    different = float(embedding("real_frame_1") @ embedding("real_frame_3"))
    rules = TrackingRules()
    assert same >= rules.min_relink_similarity
    assert different < rules.min_continuity_similarity


def test_a_track_scores_the_mean_of_its_most_suspicious_half() -> None:
    assert upper_half_mean([0.9]) == 0.9
    assert upper_half_mean([0.1, 0.2, 0.9, 0.8]) == pytest.approx(0.85)
    assert upper_half_mean([0.1, 0.2, 0.3, 0.4, 0.5]) == pytest.approx(0.4)
    # One odd frame among many moves it little; a manipulation on half the clip counts fully.
    assert upper_half_mean([0.05] * 19 + [0.99]) < 0.15
    assert upper_half_mean([0.05] * 10 + [0.9] * 10) == pytest.approx(0.9)
    with pytest.raises(ValueError, match="no values"):
        upper_half_mean([])


def test_a_clip_with_a_cut_gives_one_track_per_person_with_a_timeline(
    analyzer: Analyzer,
) -> None:
    clip = encode_clip(["real_frame_1", "real_frame_3", "real_frame_1"], seconds_each=1)
    progress: list[tuple[int, int]] = []

    result = analyze_video(
        analyzer,
        io.BytesIO(clip),
        demuxer="mp4",
        sampling=VideoSampling(),
        limits=NO_LIMITS,
        on_progress=lambda done, total: progress.append((done, total)),
    )

    assert result.status == "ok"
    assert result.frames_analysed == 6
    assert progress == [(done, 6) for done in range(7)]
    first, second = result.tracks
    # The first person comes back after the cut and rejoins their track.
    assert [round(t, 1) for t, _ in first.timeline] == [0.2, 0.7, 2.2, 2.7]
    assert [round(t, 1) for t, _ in second.timeline] == [1.2, 1.7]
    assert first.frames == first.good_frames == 4 and first.judged
    # Two good frames are fewer than the three a person needs to decide the verdict.
    assert not second.judged and second.worst.quality.reasons == ["too_brief"]
    assert first.fake_probability == pytest.approx(upper_half_mean([p for _, p in first.timeline]))
    assert first.worst_frame_s in [t for t, _ in first.timeline]
    assert first.worst.fake_probability == max(p for _, p in first.timeline)
    assert first.worst.heatmap.size == first.worst.crop.size == (160, 160)
    assert result.fake_probability == first.fake_probability
    assert result.verdict in {"fake", "uncertain", "real"}
    assert result.overlay.size == (960, 540)


def test_a_model_that_cuts_the_face_box_judges_quality_on_the_whole_box(
    analyzer: Analyzer, cut_analyzer: Analyzer
) -> None:
    # One frame a second: both samples show the same frame, so each track holds that face.
    clip = encode_clip(["real_frame_1"], seconds_each=1, fps=1)
    whole, cut = (
        analyze_video(
            model, io.BytesIO(clip), demuxer="mp4", sampling=VideoSampling(), limits=NO_LIMITS
        ).tracks[0]
        for model in (analyzer, cut_analyzer)
    )
    assert cut.worst.quality == whole.worst.quality
    assert cut.worst.fake_probability != pytest.approx(whole.worst.fake_probability)


def test_a_clip_without_faces_has_none(analyzer: Analyzer) -> None:
    blank = Image.linear_gradient("L").resize((320, 240)).convert("RGB")
    result = analyze_video(
        analyzer,
        io.BytesIO(encode_clip([blank], seconds_each=1)),
        demuxer="mp4",
        sampling=VideoSampling(),
        limits=NO_LIMITS,
    )
    assert (result.status, result.verdict, result.tracks) == ("no_face", None, [])
    assert result.frames_analysed == 2
    assert result.overlay.size == (320, 240)


def test_a_turned_clip_is_analysed_upright(analyzer: Analyzer) -> None:
    result = analyze_video(
        analyzer,
        io.BytesIO(encode_clip(["real_frame_1"], rotation=90)),
        demuxer="mp4",
        sampling=VideoSampling(),
        limits=NO_LIMITS,
    )
    assert (result.width, result.height) == (960, 540)
    assert len(result.tracks) == 1 and result.tracks[0].frames == 2


def test_the_length_measured_at_upload_sets_the_samples(analyzer: Analyzer) -> None:
    result = analyze_video(
        analyzer,
        io.BytesIO(encode_clip(["real_frame_1"], seconds_each=2)),
        demuxer="mp4",
        duration_s=1.0,
        sampling=VideoSampling(),
        limits=NO_LIMITS,
    )
    assert result.duration_s == 1.0
    assert result.frames_analysed == 2
