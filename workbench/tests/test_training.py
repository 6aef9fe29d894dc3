"""Training on tiny face sets made from the test frames: data, crops, self-blending,
augmentation, a run that is interrupted and resumed, and the model it turns into."""

from __future__ import annotations

import dataclasses
import io
import json
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from django.core.management import call_command
from django.core.management.base import CommandError
from PIL import Image

from detection.ml.card import (
    FACE_RESNET,
    Calibration,
    Evaluation,
    GroupVerdicts,
    ModelCard,
    Thresholds,
    plot_path,
    read_card,
    write_card,
)
from detection.ml.classifier import load_checkpoint
from workbench.tests.dlib_files import write_dlib_file
from workbench.tests.face_sets import tight_faces
from workbench.training.augment import jittered_crop, photo_damage
from workbench.training.blending import MASK_KINDS, face_mask, face_shape, self_blend
from workbench.training.calibration import (
    MIN_SLOPE,
    Budgets,
    calibrated,
    choose_thresholds,
    fit_calibration,
)
from workbench.training.comparison import DEV_CHECKS
from workbench.training.crops import (
    CONTEXT_SIZE,
    FaceCache,
    FrameFaces,
    context_crop,
    frame_faces,
    model_crop,
    preparation_detector,
)
from workbench.training.data import (
    LabelledFace,
    TrainingError,
    read_face_set,
    split_by_group,
    split_photos,
)
from workbench.training.report import (
    BLUR_CORRELATION,
    FinishConfig,
    MeasureConfig,
    blur_notice,
    finish,
    limitations,
    mirror_pays_off,
    refit,
    remeasure,
)
from workbench.training.run import (
    DevelopmentSets,
    RunConfig,
    Schedule,
    compute_dtype,
    development_checks,
    image_scores,
    train,
)


def run_config(face_sets: Path, workdir: Path, **overrides: object) -> RunConfig:
    values: dict[str, object] = {
        "workdir": workdir,
        "dfdc_dir": face_sets / "dfdc",
        "utkface_dir": face_sets / "utkface",
        "input_size": 96,
        "epochs": 2,
        "batch_size": 8,
        "threads": 1,
        **overrides,
    }
    return RunConfig(**values)  # type: ignore[arg-type]


# --- data --------------------------------------------------------------------------------


def faces_in(groups: int, per_group: int = 2) -> list[LabelledFace]:
    return [
        LabelledFace(Path(f"{g}-{k}.jpg"), k % 2, f"g{g}", "test")
        for g in range(groups)
        for k in range(per_group)
    ]


def test_split_keeps_every_group_on_one_side_and_is_repeatable() -> None:
    faces = faces_in(40)
    kept, held_out = split_by_group(faces, 0.15, seed=3)
    assert len(held_out) == 12 and len(kept) == 68
    assert not {faces[i].group for i in kept} & {faces[i].group for i in held_out}
    assert split_by_group(faces, 0.15, seed=3) == (kept, held_out)


def test_photos_split_into_three_disjoint_parts() -> None:
    photos = faces_in(200, per_group=1)
    parts = split_photos(photos, seed=0)
    assert sorted(parts.train + parts.calibration + parts.test) == list(range(200))
    assert (len(parts.train), len(parts.calibration), len(parts.test)) == (140, 30, 30)


def test_face_set_without_groups_makes_each_face_its_own(tmp_path: Path) -> None:
    (tmp_path / "labels.csv").write_text("file,label\na.jpg,real\nb.jpg,real\n")
    faces = read_face_set(tmp_path, "utkface")
    assert [face.group for face in faces] == ["a.jpg", "b.jpg"]
    assert faces[0].path == tmp_path.resolve() / "faces" / "a.jpg"


@pytest.mark.parametrize(
    ("labels", "problem"),
    [
        ("file,kind\na.jpg,real\n", r"lacks the columns \['label'\]"),
        ("file,label\na.jpg,forged\n", r"labels must be real or fake, found \['forged'\]"),
        ("file,label\n", "lists no faces"),
    ],
)
def test_bad_face_set_is_refused_with_the_reason(tmp_path: Path, labels: str, problem: str) -> None:
    (tmp_path / "labels.csv").write_text(labels)
    with pytest.raises(TrainingError, match=problem):
        read_face_set(tmp_path, "test")


# --- crops, blending, augmentation -------------------------------------------------------


def test_context_crop_centres_the_detected_face_with_its_landmarks(
    calibration_crops: torch.Tensor,
) -> None:
    detector = preparation_detector()
    crop = context_crop(tight_faces(calibration_crops[:1])[0], detector)
    assert not crop.missed
    assert crop.pixels.shape == (CONTEXT_SIZE, CONTEXT_SIZE, 3) and crop.pixels.dtype == np.uint8
    left_eye, right_eye, nose, mouth_left, mouth_right = crop.landmarks
    # Inside the service's crop (the middle 160 px), in a face's order from top to bottom.
    assert ((crop.landmarks > 20) & (crop.landmarks < 180)).all()
    assert left_eye[0] < right_eye[0] and mouth_left[0] < mouth_right[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])


def test_context_crop_of_a_faceless_image_is_counted_as_missed() -> None:
    crop = context_crop(Image.new("RGB", (224, 224), "grey"), preparation_detector())
    assert crop.missed and crop.pixels.shape == (CONTEXT_SIZE, CONTEXT_SIZE, 3)


def test_mean_shape_lands_on_the_five_landmarks() -> None:
    landmarks = np.array([[70, 80], [130, 80], [100, 110], [75, 140], [125, 140]], float)
    shape = face_shape(landmarks)
    eyes = np.stack([shape[36:42].mean(axis=0), shape[42:48].mean(axis=0)])
    assert np.abs(eyes - landmarks[:2]).max() < 6
    assert np.abs(shape[[48, 54]] - landmarks[3:]).max() < 8
    for kind in MASK_KINDS:
        mask = face_mask(shape, (200, 200), kind)
        assert all(mask[round(y), round(x)] == 1 for x, y in landmarks), kind
        assert mask[5, 5] == 0 and mask[195, 195] == 0, kind


def test_self_blend_changes_the_face_inside_its_mask_only(calibration_crops: torch.Tensor) -> None:
    crop = context_crop(tight_faces(calibration_crops[:1])[0], preparation_detector())
    for seed in range(8):
        fake, mask = self_blend(crop.pixels, crop.landmarks, np.random.default_rng(seed))
        assert fake.shape == crop.pixels.shape and fake.dtype == np.uint8
        changed = np.abs(fake.astype(int) - crop.pixels.astype(int)).max(axis=2) > 0
        assert changed.any()
        # Either the face (inside the mask) or its surroundings were the altered copy: the
        # other side is untouched.
        untouched_outside = not changed[mask == 0].any()
        untouched_inside = not changed[mask >= 0.999].any()
        assert untouched_outside or untouched_inside


def test_augmentation_is_repeatable_and_keeps_the_service_crop_shape() -> None:
    context = np.random.default_rng(0).integers(0, 256, (CONTEXT_SIZE, CONTEXT_SIZE, 3), np.uint8)
    for seed, top_cut in zip(range(6), (0.0, 0.2) * 3, strict=True):
        first, again = (
            photo_damage(
                jittered_crop(context, np.random.default_rng(seed), top_cut=top_cut),
                np.random.default_rng(seed),
            )
            for _ in range(2)
        )
        assert first.shape == (160, 160, 3) and first.dtype == np.uint8
        assert np.array_equal(first, again)


def test_a_model_that_cuts_the_top_of_the_box_never_sees_the_band_the_cache_invents() -> None:
    """The data sets' crops end below the top of MTCNN's box, a median 15 % of its height;
    the cache fills the band above them by reflection. A model trained with `crop_top_cut`
    0.2 sees none of it in its checks (the service's crop) and next to none in training."""
    middle = (CONTEXT_SIZE - 160) // 2
    context = np.full((CONTEXT_SIZE, CONTEXT_SIZE, 3), 128, np.uint8)
    context[: middle + round(0.15 * 160)] = (255, 0, 0)  # the reflected band, in red

    def red_rows(face: np.ndarray) -> int:
        return int(((face[..., 0] > 200) & (face[..., 1] < 60)).any(axis=1).sum())

    assert np.array_equal(model_crop(context, 0.0), context[middle:-middle, middle:-middle])
    assert red_rows(model_crop(context, 0.0)) == 24
    assert red_rows(model_crop(context, 0.2)) == 0
    # Jittered boxes vary around the model's region (MTCNN's boxes do): every whole-box crop
    # shows the band, few cut ones touch it, and then by a few of their 160 rows.
    whole, cut = (
        np.array(
            [
                red_rows(jittered_crop(context, np.random.default_rng(seed), top_cut=top_cut))
                for seed in range(200)
            ]
        )
        for top_cut in (0.0, 0.2)
    )
    assert whole.min() > 0 and np.median(whole) >= 20
    assert np.mean(cut > 0) <= 0.15 and cut.max() <= 8
    cache = FaceCache(
        Path("unused"),
        np.stack([context, context[::-1]]),
        np.zeros((2, 5, 2), np.float32),
        np.zeros(2, bool),
    )
    crops = cache.service_crops([0, 1], top_cut=0.2).permute(0, 2, 3, 1).numpy()
    assert np.array_equal(crops[0], model_crop(context, 0.2)) and red_rows(crops[0]) == 0
    assert red_rows(crops[1]) > 0, "the band at the bottom (flipped) is inside the crop"


def test_a_cut_models_frames_check_judges_the_faces_the_service_judges(
    samples_dir: Path, tmp_path: Path
) -> None:
    # The quality check measures the whole box, whatever the model sees: a run that cuts the
    # box counts the same frames as the service, with crops of its own. (fake_frame_0's
    # smaller face is sharp enough whole and, enlarged, too soft cut.)
    images = [(samples_dir / "fake_frame_0.jpg", 1), (samples_dir / "real_frame_1.jpg", 0)]
    whole, cut = (
        frame_faces(images, cache_root=tmp_path, top_cut=top_cut) for top_cut in (0.0, 0.2)
    )
    assert np.array_equal(cut.judged, whole.judged) and whole.judged.all()
    assert np.array_equal(cut.image_of_face, whole.image_of_face)
    assert not torch.equal(cut.crops, whole.crops)


# --- calibration -------------------------------------------------------------------------


def test_calibration_fit_undoes_a_known_overconfidence_and_offset() -> None:
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 2, 4000)
    labels = (rng.random(4000) < 1 / (1 + np.exp(-true_logits))).astype(np.float64)

    # Three times too confident, and shifted towards "fake" as a model trained on more
    # (and easier) fakes than the validation faces hold would be.
    calibration = fit_calibration(3 * true_logits + 1.5, labels)

    assert calibration.temperature == pytest.approx(3, rel=0.15)
    assert calibration.bias == pytest.approx(-0.5, abs=0.15)
    assert calibrated(3 * true_logits + 1.5, calibration) == pytest.approx(
        1 / (1 + np.exp(-true_logits)), abs=0.06
    )
    # A temperature alone cannot move the scores back: the bias is what does.
    unbiased = dataclasses.replace(calibration, bias=0.0)
    offset = calibrated(3 * true_logits + 1.5, unbiased) - 1 / (1 + np.exp(-true_logits))
    assert offset.mean() > 0.05


def test_a_model_that_tells_nothing_is_calibrated_to_the_base_rate_on_every_machine() -> None:
    """Logits no better than the base rate (here slightly backwards, as a barely trained model's
    can be) used to send the fit towards an infinite temperature, stopping wherever rounding
    left it: two CPUs refitting the same model disagreed by a factor of three."""
    rng = np.random.default_rng(1)
    labels = (rng.random(400) < 0.3).astype(np.float64)
    logits = rng.normal(0, 1, 400) - 0.2 * labels
    rounded_elsewhere = logits + rng.normal(0, 1e-7, 400)

    here, there = fit_calibration(logits, labels), fit_calibration(rounded_elsewhere, labels)

    assert here.temperature == there.temperature == pytest.approx(1 / MIN_SLOPE)
    assert here.bias == pytest.approx(there.bias, abs=1e-6)
    assert calibrated(logits, here) == pytest.approx(labels.mean(), abs=1e-3)


def test_thresholds_respect_the_budget_of_every_set_of_real_faces() -> None:
    frames = np.linspace(0, 0.6, 500)  # video frames: low scores
    photos = np.linspace(0.2, 0.9, 500)  # photos score higher: they set the stricter cut
    thresholds = choose_thresholds({"frames": frames, "photos": photos})
    for reals in (frames, photos):
        assert np.mean(reals >= thresholds.flag) <= 0.02
        assert np.mean(reals >= thresholds.uncertain) <= 0.05
    assert np.mean(photos >= thresholds.flag) > 0.015, "not stricter than it needs to be"
    assert 0 <= thresholds.uncertain <= thresholds.flag <= 1
    assert "frames and photos" in thresholds.selection


def test_thresholds_can_be_held_to_a_stricter_budget() -> None:
    photos = np.linspace(0.2, 0.9, 1000)
    usual = choose_thresholds({"photos": photos})
    strict = choose_thresholds({"photos": photos}, Budgets(fake=0.005, uncertain=0.01))

    assert 0.004 <= np.mean(photos >= strict.flag) <= 0.005
    assert 0.009 <= np.mean(photos >= strict.uncertain) <= 0.01
    assert strict.flag > usual.flag and strict.uncertain > usual.uncertain
    assert "at most 0.5% of the photos; uncertain: the same at 1%" in strict.selection
    assert "at most 2% of the photos; uncertain: the same at 5%" in usual.selection


@pytest.mark.parametrize(
    ("fake", "uncertain", "message"),
    [
        (0.03, 0.05, "the fake budget must be above 0 and at most 0.02, not 0.03"),
        (0.0, 0.05, "the fake budget must be above 0"),
        (0.02, 0.01, r"the uncertain budget must lie between the fake budget \(0.02\) and 0.05"),
        (0.01, 0.06, "and 0.05, not 0.06"),
    ],
)
def test_budgets_never_pass_the_limits(fake: float, uncertain: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Budgets(fake=fake, uncertain=uncertain)


# --- a whole run -------------------------------------------------------------------------


def test_interrupted_run_resumes_to_exactly_the_uninterrupted_weights(
    face_sets: Path, tmp_path: Path
) -> None:
    straight = train(
        run_config(face_sets, tmp_path / "straight"),
        resume=False,
        progress=False,
        log=lambda _: None,
    )

    messages: list[str] = []
    interrupted = run_config(face_sets, tmp_path / "interrupted", stop_after_minutes=0)
    train(interrupted, resume=False, progress=False, log=messages.append)
    assert any("continue with --resume" in message for message in messages)
    assert json.loads(interrupted.history_path.read_text())["next_batch"] == 1
    resumed = train(
        run_config(face_sets, tmp_path / "interrupted"),
        resume=True,
        progress=False,
        log=messages.append,
    )

    assert any("resuming at epoch 1, batch 1" in message for message in messages)
    assert [record.epoch for record in resumed.progress.epochs] == [1, 2]
    for key, value in straight.ema.module.state_dict().items():
        assert torch.equal(value, resumed.ema.module.state_dict()[key]), key
    assert resumed.progress.images_seen == straight.progress.images_seen

    # What the run exports and evaluates is the average with batch-norm statistics measured
    # on training crops, not the averaged statistics (which do not fit the averaged weights).
    loaded = load_checkpoint(run_config(face_sets, tmp_path / "straight").ema_path)
    # Read at the size it was trained at (96 here), not the published model's default, and
    # never mistaken for a finished model.
    assert loaded.input_size == 96 and loaded.card is not None and not loaded.card.trained
    assert "epoch 2 (unfinished)" in loaded.card.name
    exported = loaded.state_dict
    averaged = straight.ema.module.state_dict()
    means = [key for key in averaged if key.endswith("running_mean")]
    assert means
    for key, value in averaged.items():
        if key.endswith(("running_mean", "running_var", "num_batches_tracked")):
            continue
        assert torch.equal(exported[key].float(), value.float()), key
    assert any(not torch.allclose(exported[key], averaged[key]) for key in means)


def test_run_refuses_to_overwrite_or_to_resume_with_other_settings(
    face_sets: Path, tmp_path: Path
) -> None:
    config = run_config(face_sets, tmp_path / "run", epochs=1)
    with pytest.raises(TrainingError, match="nothing to resume"):
        train(config, resume=True, progress=False, log=lambda _: None)
    train(config, resume=False, progress=False, log=lambda _: None)
    with pytest.raises(TrainingError, match="holds a saved run"):
        train(config, resume=False, progress=False, log=lambda _: None)
    with pytest.raises(TrainingError, match=r"'learning_rate': \(0.001, 0.01\)"):
        train(
            run_config(face_sets, tmp_path / "run", epochs=1, learning_rate=0.01),
            resume=True,
            progress=False,
            log=lambda _: None,
        )


def test_a_resumed_run_given_more_epochs_re_plans_its_schedule(
    face_sets: Path, tmp_path: Path
) -> None:
    messages: list[str] = []
    first = run_config(face_sets, tmp_path / "run", epochs=1, stop_after_minutes=0)
    train(first, resume=False, progress=False, log=messages.append)
    run = train(
        run_config(face_sets, tmp_path / "run", epochs=2),
        resume=True,
        progress=False,
        log=messages.append,
    )

    assert any("re-planned for 2 epochs instead of 1" in message for message in messages)
    assert [record.epoch for record in run.progress.epochs] == [1, 2]
    assert run.learning_rate == pytest.approx(0.01 * run.config.learning_rate)
    history = json.loads(run.config.history_path.read_text())
    assert history["config"]["epochs"] == 2


def test_the_command_resumes_a_run_with_the_settings_it_was_started_with(
    face_sets: Path, tmp_path: Path
) -> None:
    where = {
        "workdir": tmp_path / "run",
        "dfdc": face_sets / "dfdc",
        "utkface": face_sets / "utkface",
        "samples": tmp_path / "no-frames",
        "threads": 1,
        "no_progress": True,
    }
    started = io.StringIO()
    call_command(
        "train_detector",
        **where,
        input_size=96,
        crop_top_cut=0.15,
        epochs=1,
        batch_size=8,
        lr=0.01,
        stop_after=0,
        stdout=started,
    )
    assert "continue with --resume" in started.getvalue()

    resumed = io.StringIO()
    call_command("train_detector", **where, resume=True, stdout=resumed)

    assert "resuming at epoch 1, batch 1" in resumed.getvalue()
    assert "re-planned" not in resumed.getvalue(), "the saved epoch count is kept"
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [record["epoch"] for record in history["epochs"]] == [1]
    assert history["config"]["input_size"] == 96
    assert history["config"]["learning_rate"] == 0.01
    # The run's weights say how it cropped faces: the service crops them the same way.
    assert load_checkpoint(tmp_path / "run" / "ema.pth").crop_top_cut == 0.15
    # A setting that is restated must still match the saved one.
    with pytest.raises(CommandError, match=r"'learning_rate': \(0.01, 0.02\)"):
        call_command("train_detector", **where, resume=True, lr=0.02, stdout=io.StringIO())


def test_a_re_planned_schedule_goes_on_from_where_it_was_and_still_anneals() -> None:
    planned = Schedule.planned(total=1000)
    assert planned.warmup == 50
    assert planned.factor(0) == pytest.approx(1 / 50) and planned.factor(49) == 1.0
    assert planned.factor(1000) == pytest.approx(0.01)
    for step, total in ((600, 700), (600, 3000)):  # shortened, lengthened
        replanned = planned.replanned(step=step, total=total)
        assert replanned.factor(step) == pytest.approx(planned.factor(step))
        factors = [replanned.factor(later) for later in range(step, total + 1)]
        assert factors == sorted(factors, reverse=True), "never climbs back"
        assert factors[-1] == pytest.approx(0.01)
    # Still warming up: the warm-up goes on and the decay starts after it, as planned.
    assert planned.replanned(step=10, total=2000) == Schedule(warmup=50, total=2000, decay_from=50)


def finished_model(
    face_sets: Path, tmp_path: Path, *, gan_dir: Path | None, samples_dir: Path | None
) -> tuple[Path, ModelCard]:
    """A one-epoch run on the tiny sets, finished into `models/tiny.pth`."""
    config = run_config(face_sets, tmp_path / "run", epochs=1)
    train(config, resume=False, progress=False, log=lambda _: None)
    output = tmp_path / "models" / "tiny.pth"
    return output, finished(config, output, gan_dir=gan_dir, samples_dir=samples_dir)


def finished(
    config: RunConfig, output: Path, *, gan_dir: Path | None, samples_dir: Path | None
) -> ModelCard:
    return finish(
        FinishConfig(
            workdir=config.workdir,
            output=output,
            dfdc_dir=config.dfdc_dir,
            utkface_dir=config.utkface_dir,
            gan_dir=gan_dir,
            samples_dir=samples_dir,
            name=output.stem,
            command="test",
        ),
        log=lambda _: None,
    )


class _Blurriness(torch.nn.Module):
    """Scores a face by its blur alone (`sign` 1) or its sharpness (-1): the variance of its
    gray Laplacian, as the service measures sharpness, in float32 (bf16 would reorder)."""

    def __init__(self, sign: int) -> None:
        super().__init__()
        self.sign = sign

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.autocast(batch.device.type, enabled=False):
            x = batch.float()
            gray = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
            laplacian = (
                gray[:, :-2, 1:-1]
                + gray[:, 2:, 1:-1]
                + gray[:, 1:-1, :-2]
                + gray[:, 1:-1, 2:]
                - 4 * gray[:, 1:-1, 1:-1]
            )
            return -self.sign * laplacian.flatten(1).var(dim=1)


@pytest.mark.parametrize("sign", [1, -1])
def test_each_epoch_measures_how_closely_real_faces_scores_follow_blur(
    calibration_crops: torch.Tensor, sign: int
) -> None:
    faces = calibration_crops[:3].numpy().transpose(0, 2, 3, 1)
    # Each face sharp and blurred twice over: real faces of known, different sharpness; the
    # fakes (the same faces mirrored) must not count.
    reals = [
        cv2.GaussianBlur(face, (0, 0), sigma) if sigma else face
        for face in faces
        for sigma in (0, 1, 2.5)
    ]
    fakes = [face[:, ::-1] for face in reals]
    crops = torch.from_numpy(np.stack(reals + fakes).transpose(0, 3, 1, 2).copy())
    sets = DevelopmentSets(
        dfdc_crops=crops,
        dfdc_labels=np.r_[np.zeros(len(reals)), np.ones(len(fakes))],
        blend_crops=crops,
        blend_labels=np.r_[np.zeros(len(reals)), np.ones(len(fakes))],
        frames=None,
    )

    checks = development_checks(_Blurriness(sign), sets, input_size=160, device=torch.device("cpu"))

    assert checks["dfdc_blur_rank_correlation_reals"] == pytest.approx(sign)


def test_an_image_is_scored_by_its_most_suspicious_good_face_as_the_service_does() -> None:
    frames = FrameFaces(
        crops=torch.zeros((5, 3, 160, 160), dtype=torch.uint8),
        image_of_face=np.array([0, 0, 1, 1, 2]),
        labels=np.array([1, 0, 1]),
        judged=np.array([True, False, True, True, False]),
    )

    scores, labels = image_scores(np.array([0.2, 5.0, -1.0, 0.4, 3.0]), frames)

    # Image 0's blurry or tiny face does not outscore its good one; image 2 has no good face.
    assert scores.tolist() == [0.2, 0.4] and labels.tolist() == [1, 0]


def test_finished_run_is_a_calibrated_fp16_model_with_its_card(
    face_sets: Path, samples_dir: Path, tmp_path: Path
) -> None:
    output, card = finished_model(
        face_sets, tmp_path, gan_dir=face_sets / "dfdc", samples_dir=samples_dir
    )
    weights = torch.load(output, weights_only=True)["model_state_dict"]
    assert weights["logits.weight"].dtype == torch.float16
    loaded = load_checkpoint(output)
    assert loaded.card == card and card.trained and card.input_size == 96
    assert (
        card.thresholds is not None and 0 <= card.thresholds.uncertain <= card.thresholds.flag <= 1
    )
    assert 0 < card.calibration.temperature < math.inf and math.isfinite(card.calibration.bias)
    assert card.calibration.method.startswith("Platt scaling")
    assert set(card.evaluations) == {
        "dfdc_validation",
        "utkface_photos",
        "gan_faces",
        "sample_frames",
    }
    assert card.evaluations["gan_faces"].in_domain is False
    blur = card.evaluations["dfdc_validation"].metrics["blur_rank_correlation_reals"]
    assert blur is None or -1 <= blur <= 1
    # The photo check, group by group: every test photo in one group of each attribute, and
    # the groups' verdicts add up to the whole set's.
    photos = card.evaluations["utkface_photos"]
    by_attribute: dict[str, list[GroupVerdicts]] = {}
    for group in photos.by_group:
        by_attribute.setdefault(group.attribute, []).append(group)
    assert set(by_attribute) == {"age", "gender", "ethnicity"}
    for groups in by_attribute.values():
        assert sum(group.count for group in groups) == photos.metrics["count"]
        judged = sum(group.judged_fake for group in groups)
        assert judged / photos.metrics["count"] == pytest.approx(photos.metrics["flagged_fake"])
    frames = card.evaluations["sample_frames"]
    # Frames without a good face (real_frame_2 has none, real_frame_0 a tiny one) are left
    # out and counted in the note.
    left_out = int(frames.note.split("frames without one: ")[1].split(".")[0])
    assert frames.note.startswith("14 frames") and frames.metrics["count"] + left_out == 14
    assert 2 <= left_out <= 4
    assert 0 <= frames.metrics["fakes_flagged"] <= frames.metrics["fakes"] <= 6
    # Each epoch's frames check counts the frames the card counts, by the same quality rule.
    images = sorted(samples_dir.glob("*_frame_*.jpg"))
    faces = frame_faces(
        [(path, int(path.name.startswith("fake"))) for path in images],
        cache_root=tmp_path,
        top_cut=0.0,
    )
    _, labels = image_scores(np.zeros(len(faces.crops)), faces)
    assert (len(labels), int(labels.sum())) == (frames.metrics["count"], frames.metrics["fakes"])
    low, auc, high = (frames.metrics[key] for key in ("auc_low", "auc", "auc_high"))
    assert 0 <= low <= auc <= high <= 1
    sentence = next(sentence for sentence in card.summary if "FaceForensics++" in sentence)
    assert f"AUC {auc:.2f}, 95 % interval {low:.2f}-{high:.2f}" in sentence
    # A dozen frames cannot tell a model from chance unless it ranks nearly all of them right.
    assert ("frames are too few to tell it from chance" in sentence) == (low <= 0.5)
    assert "non-commercial research" in card.training_data["licence"]
    assert "UTKFace" in card.training_data["licence"] and card.limitations == limitations("mix")
    assert "self-blended training" in card.limitations[0]
    assert card.training["command"] == "test" and card.training["epochs_run"] == 1
    precision = str(compute_dtype(torch.device("cpu"))).removeprefix("torch.")
    assert card.training["precision"].startswith(precision)
    for kind in ("roc", "reliability", "training"):
        assert plot_path(output, kind).read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("capability", "expected"),
    [("AVX2", torch.float32), ("DEFAULT", torch.float32), ("AVX512", torch.bfloat16)],
)
def test_bf16_only_on_cpus_with_bf16_kernels(
    monkeypatch: pytest.MonkeyPatch, capability: str, expected: torch.dtype
) -> None:
    # Without AVX-512, oneDNN emulates bf16 about ten times slower than float32.
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    assert compute_dtype(torch.device("cpu")) == expected
    assert compute_dtype(torch.device("cuda")) == torch.bfloat16


def test_train_detector_command_needs_an_output_to_finish(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="--finish needs --output"):
        call_command("train_detector", workdir=tmp_path, finish=True, stdout=io.StringIO())
    with pytest.raises(CommandError, match="holds no finished epoch"):
        call_command(
            "train_detector",
            workdir=tmp_path,
            finish=True,
            output=tmp_path / "m.pth",
            stdout=io.StringIO(),
        )


def test_a_model_can_be_finished_to_flag_fewer_real_faces(
    face_sets: Path, samples_dir: Path, tmp_path: Path
) -> None:
    _, usual = finished_model(face_sets, tmp_path, gan_dir=None, samples_dir=samples_dir)
    strict = tmp_path / "models" / "strict.pth"

    call_command(
        "train_detector",
        workdir=tmp_path / "run",
        finish=True,
        output=strict,
        dfdc=face_sets / "dfdc",
        utkface=face_sets / "utkface",
        gan=face_sets / "dfdc",
        samples=samples_dir,
        fake_budget=0.005,
        uncertain_budget=0.01,
        stdout=io.StringIO(),
    )

    card = read_card(strict)
    assert card is not None and card.thresholds is not None and usual.thresholds is not None
    assert card.thresholds.flag >= usual.thresholds.flag
    assert card.thresholds.uncertain >= usual.thresholds.uncertain
    assert "at most 0.5% of the" in card.thresholds.selection
    photos, usual_photos = (model.evaluations["utkface_photos"].metrics for model in (card, usual))
    assert photos["flagged_fake"] <= usual_photos["flagged_fake"]
    assert photos["flagged_uncertain"] <= usual_photos["flagged_uncertain"]
    # Shares this small keep a decimal in the summary: 0.5 % must not read as 1 %.
    assert (
        f'"Likely manipulated" for {100 * photos["flagged_fake"]:.1f} % and "Uncertain" or '
        f"worse for {100 * photos['flagged_uncertain']:.1f} %."
    ) in " ".join(card.summary)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"fake_budget": 0.01}, "go with --finish or --refit"),
        ({"uncertain_budget": 0.01, "remeasure": Path("m.pth")}, "go with --finish or --refit"),
        ({"fake_budget": 0.03, "finish": True}, "at most 0.02, not 0.03"),
    ],
)
def test_budgets_are_refused_where_they_mean_nothing_or_too_much(
    options: dict[str, Any], message: str, tmp_path: Path
) -> None:
    with pytest.raises(CommandError, match=message):
        call_command(
            "train_detector",
            workdir=tmp_path,
            output=tmp_path / "m.pth",
            stdout=io.StringIO(),
            **options,
        )


def test_a_warm_start_can_keep_its_first_blocks(face_sets: Path, tmp_path: Path) -> None:
    first = run_config(face_sets, tmp_path / "first", epochs=1)
    train(first, resume=False, progress=False, log=lambda _: None)
    warm = train(
        run_config(
            face_sets, tmp_path / "warm", epochs=1, init=first.ema_path, train_from="repeat_1"
        ),
        resume=False,
        progress=False,
        log=lambda _: None,
    )

    start = load_checkpoint(first.ema_path).state_dict
    exported = load_checkpoint(warm.config.ema_path).state_dict
    # The stem is the warm start's, statistics included; what follows it has learned.
    stem = [key for key in start if key.startswith(("conv2d_", "maxpool_"))]
    assert stem and all(torch.equal(exported[key], start[key]) for key in stem)
    assert not torch.equal(exported["block8.conv2d.weight"], start["block8.conv2d.weight"])


def test_a_model_fine_tuned_from_a_finished_one_says_how_that_one_was_trained(
    face_sets: Path, tmp_path: Path
) -> None:
    first, first_card = finished_model(face_sets, tmp_path, gan_dir=None, samples_dir=None)
    config = run_config(face_sets, tmp_path / "tuned", epochs=1, init=first, recipe="dfdc")
    train(config, resume=False, progress=False, log=lambda _: None)

    card = finished(config, tmp_path / "tuned.pth", gan_dir=None, samples_dir=None)

    first_training = first_card.training
    assert card.training["warm_start"] == (
        f"{first}: the finished model tiny (recipe: {first_training['recipe']}; epochs: 1; "
        f"images seen: {first_training['images_seen']:,}; training hours: "
        f"{first_training['training_hours']}; trained blocks: all; its own start: none "
        "(random initialisation))"
    )
    # An unfinished run's weights carry no training facts: the file is named alone.
    unfinished = tmp_path / "run" / "ema.pth"
    from_unfinished = run_config(face_sets, tmp_path / "again", epochs=1, init=unfinished)
    train(from_unfinished, resume=False, progress=False, log=lambda _: None)
    again = finished(from_unfinished, tmp_path / "again.pth", gan_dir=None, samples_dir=None)
    assert again.training["warm_start"] == str(unfinished)


def dlib_checkpoint(output: Path) -> Path:
    """A FaceResNet start made as users make one: a dlib file (random weights) imported."""
    write_dlib_file(output.with_suffix(".dat"), np.random.default_rng(0), spread=0.05)
    call_command(
        "import_face_resnet", str(output.with_suffix(".dat")), output=output, stdout=io.StringIO()
    )
    return output


def test_a_face_resnet_run_starts_from_dlib_weights_and_finishes_as_one(
    face_sets: Path, tmp_path: Path
) -> None:
    dlib = dlib_checkpoint(tmp_path / "dlib.pth")
    start = load_checkpoint(dlib)
    assert (start.network, start.input_size, start.card) == (FACE_RESNET, 150, None)
    config = run_config(face_sets, tmp_path / "run", epochs=1, init=dlib)
    train(config, resume=False, progress=False, log=lambda _: None)
    averaged = load_checkpoint(config.ema_path)
    assert averaged.card is not None and averaged.card.network == FACE_RESNET
    assert averaged.state_dict["logit.weight"].any(), "the real/fake logit has learned"
    output = tmp_path / "face-resnet.pth"
    card = finished(config, output, gan_dir=None, samples_dir=None)
    assert card.network == FACE_RESNET and "dlib" in card.architecture
    assert card.limitations == limitations("mix", FACE_RESNET)
    assert "three million faces" in card.training_data["pretrained"]
    assert not any("from scratch" in limitation for limitation in card.limitations)
    assert load_checkpoint(output).network == FACE_RESNET


def test_a_face_resnet_run_can_keep_dlib_first_units(face_sets: Path, tmp_path: Path) -> None:
    dlib = dlib_checkpoint(tmp_path / "dlib.pth")
    config = run_config(face_sets, tmp_path / "run", epochs=1, init=dlib, train_from="units.7")
    train(config, resume=False, progress=False, log=lambda _: None)

    start = load_checkpoint(dlib).state_dict
    exported = load_checkpoint(config.ema_path).state_dict
    kept = [key for key in start if key.startswith(("stem.", *(f"units.{i}." for i in range(7))))]
    assert kept and all(torch.equal(exported[key], start[key]) for key in kept)
    assert not torch.equal(exported["units.7.conv1.weight"], start["units.7.conv1.weight"])
    assert not torch.equal(exported["units.12.conv2.weight"], start["units.12.conv2.weight"])


def test_frozen_blocks_need_a_warm_start_and_a_block_of_its_network(
    face_sets: Path, tmp_path: Path
) -> None:
    with pytest.raises(TrainingError, match="train_from needs init"):
        run_config(face_sets, tmp_path, train_from="repeat_1")
    with pytest.raises(TrainingError, match="unknown block 'unit7'"):
        run_config(face_sets, tmp_path, init=tmp_path / "x.pth", train_from="unit7")
    first = run_config(face_sets, tmp_path / "first", epochs=1)
    train(first, resume=False, progress=False, log=lambda _: None)
    with pytest.raises(TrainingError, match=r"unknown block 'units\.7' of inception_resnet_v1"):
        train(
            run_config(face_sets, tmp_path / "frozen", init=first.ema_path, train_from="units.7"),
            resume=False,
            progress=False,
            log=lambda _: None,
        )
    assert not (tmp_path / "frozen" / "state.pt").exists()


def test_a_model_is_measured_again_with_its_own_calibration_and_thresholds(
    face_sets: Path, samples_dir: Path, tmp_path: Path
) -> None:
    output, finished = finished_model(face_sets, tmp_path, gan_dir=None, samples_dir=None)
    # A card from before the photo measurements, as the first shipped model's was, whose
    # limitations quote numbers of their own.
    older = dataclasses.replace(
        finished,
        evaluations={"dfdc_validation": finished.evaluations["dfdc_validation"]},
        summary=[],
        limitations=["On other frames it is somewhat better than chance (AUC 0.68)."],
        training={**finished.training, "recipe": "dfdc"},
    )
    measure = MeasureConfig(
        checkpoint=output,
        dfdc_dir=face_sets / "dfdc",
        utkface_dir=face_sets / "utkface",
        gan_dir=face_sets / "dfdc",
        samples_dir=samples_dir,
        cache_root=tmp_path / "cache",
    )
    write_card(output, dataclasses.replace(older, training={}))
    with pytest.raises(TrainingError, match="names no training recipe"):
        remeasure(measure, log=lambda _: None)
    write_card(output, older)

    card = remeasure(measure, log=lambda _: None)

    assert read_card(output) == card
    assert (card.thresholds, card.calibration) == (finished.thresholds, finished.calibration)
    assert card.evaluations["dfdc_validation"].metrics == (
        finished.evaluations["dfdc_validation"].metrics
    )
    assert card.evaluations["utkface_photos"].metrics == (
        finished.evaluations["utkface_photos"].metrics
    )
    assert {"gan_faces", "sample_frames"} <= set(card.evaluations)
    assert any("ordinary photos of real people" in sentence for sentence in card.summary)
    assert "thresholds (" in card.evaluations["dfdc_validation"].note
    # The limitations are written anew for a DFDC-only model: no quoted number, no self-blends.
    assert card.limitations == limitations("dfdc")
    assert "self-blend" not in card.limitations[0]
    assert card.summary[0].startswith("On face swaps like those it was trained on (DFDC videos")
    # A self-blend model's card does not claim it trained on DFDC swaps.
    write_card(output, dataclasses.replace(card, training={**card.training, "recipe": "sbi"}))
    self_blended = remeasure(measure, log=lambda _: None)
    assert self_blended.limitations == limitations("sbi")
    assert self_blended.summary[0].startswith(
        "On DFDC face swaps (its training used self-blends instead; DFDC videos it never saw"
    )


def test_compare_models_paired_scores_both_models_on_the_same_faces(
    face_sets: Path,
    samples_dir: Path,
    tmp_path: Path,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    output, card = finished_model(
        face_sets, tmp_path, gan_dir=face_sets / "dfdc", samples_dir=samples_dir
    )
    twin = tmp_path / "twin.pth"
    twin.write_bytes(output.read_bytes())
    write_card(twin, dataclasses.replace(card, name="twin"))
    data = tmp_path / "data"
    data.mkdir()
    for name, folder in [
        ("dfdc_faces", face_sets / "dfdc"),
        ("utkface_faces", face_sets / "utkface"),
        ("gan_faces", face_sets / "dfdc"),
        ("samples", samples_dir),
    ]:
        (data / name).symlink_to(folder)
    monkeypatch.setenv("DATA_DIR", str(data))
    settings.BASE_DIR = tmp_path  # the face cache goes under var/ here
    stdout = io.StringIO()

    call_command("compare_models", str(twin), against=output, paired=True, stdout=stdout)

    lines = stdout.getvalue().splitlines()
    header = next(index for index, line in enumerate(lines) if line.startswith("check"))
    assert lines[header].split() == ["check", "tiny", "twin", "difference", "[95", "%]", "goal"]
    rows = lines[header + 1 : header + 1 + len(DEV_CHECKS)]
    assert [row.split("  ")[0] for row in rows] == [check.label for check in DEV_CHECKS]
    # The same weights score every face alike: no difference, and none in any resample.
    for row in rows:
        assert "+0.000 [+0.000, +0.000]" in row or "+0.00 pp [+0.00, +0.00]" in row, row
    assert lines[-1] == "twin is no better than tiny on any dev check."
    assert (tmp_path / "var" / "training" / "cache").is_dir()


def approx(expected: object) -> object:
    return pytest.approx(expected, rel=1e-3)


def settings_of(card: ModelCard) -> list[float]:
    assert card.thresholds is not None
    return [
        card.calibration.temperature,
        card.calibration.bias,
        card.thresholds.flag,
        card.thresholds.uncertain,
    ]


def test_a_model_finished_under_older_rules_is_refitted_to_todays(
    face_sets: Path, samples_dir: Path, tmp_path: Path
) -> None:
    output, finished = finished_model(face_sets, tmp_path, gan_dir=None, samples_dir=samples_dir)
    weights = output.read_bytes()
    # A card as the first shipped model's: a temperature alone, thresholds set on DFDC faces
    # alone, no mirror averaging, and a measurement the new settings make stale.
    older = dataclasses.replace(
        finished,
        calibration=Calibration(temperature=2.0, method="temperature scaling"),
        thresholds=Thresholds(flag=0.9, uncertain=0.8, selection="1 % of validation real faces"),
        mirror_average=not finished.mirror_average,
        evaluations={
            **finished.evaluations,
            "dfdc_validation_before_calibration": Evaluation(title="before", metrics={"ece": 0.1}),
        },
    )
    write_card(output, older)
    measure = MeasureConfig(
        checkpoint=output,
        dfdc_dir=face_sets / "dfdc",
        utkface_dir=face_sets / "utkface",
        gan_dir=None,
        samples_dir=samples_dir,
        cache_root=tmp_path / "cache",
    )
    logged: list[str] = []

    card = refit(measure, command="refit-test", log=logged.append)

    # The same weights get the settings that finishing them today gives (up to the last digits
    # of a fit that the number of threads moves), and nothing else moves.
    assert output.read_bytes() == weights and read_card(output) == card
    assert card.mirror_average == finished.mirror_average
    assert card.thresholds is not None and finished.thresholds is not None
    assert card.thresholds.selection == finished.thresholds.selection
    assert settings_of(card) == approx(settings_of(finished))
    # The frames too are measured through the pipeline with the new settings.
    assert card.evaluations.keys() == finished.evaluations.keys()
    for key, measured in card.evaluations.items():
        assert measured.note == finished.evaluations[key].note
        expected = finished.evaluations[key].metrics
        assert measured.metrics.keys() == expected.keys()
        for name, value in measured.metrics.items():
            assert value == (None if expected[name] is None else approx(expected[name])), name
    assert "held-out UTKFace photos" in card.thresholds.selection
    assert any("dropped dfdc_validation_before_calibration" in line for line in logged)
    assert card.training["command"] == "test" and card.training["epochs_run"] == 1
    refitted = card.training["refitted"]
    assert "refit-test" in refitted and "temperature 2.000" in refitted
    assert "1 % of validation real faces" in refitted
    assert card.summary == finished.summary


@pytest.mark.parametrize(
    ("alone", "mirrored", "chosen"),
    [(0.6906, 0.6927, False), (0.80, 0.815, True), (0.70, 0.74, True), (0.75, 0.70, False)],
)
def test_mirror_averaging_must_gain_enough_to_pay_for_twice_the_work(
    alone: float, mirrored: float, chosen: bool
) -> None:
    assert mirror_pays_off(alone=alone, mirrored=mirrored) is chosen


@pytest.mark.parametrize(("correlation", "warned"), [(0.59, True), (0.3, True), (0.1, False)])
def test_moderators_are_warned_when_scores_follow_blur(correlation: float, warned: bool) -> None:
    notice = blur_notice({BLUR_CORRELATION: correlation})
    assert (notice is not None) == warned
    if notice:
        assert f"rank correlation {correlation:.2f}" in notice and "blurrier" in notice
    assert blur_notice({}) is None  # a card measured before blur was


def test_a_model_is_either_remeasured_or_refitted(tmp_path: Path) -> None:
    checkpoint = tmp_path / "model.pth"
    with pytest.raises(CommandError, match="choose one"):
        call_command("train_detector", remeasure=checkpoint, refit=checkpoint, stdout=io.StringIO())
    with pytest.raises(CommandError, match="checkpoint not found"):
        call_command("train_detector", refit=checkpoint, stdout=io.StringIO())


def test_remeasure_names_a_missing_model(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="checkpoint not found"):
        call_command("train_detector", remeasure=tmp_path / "none.pth", stdout=io.StringIO())
