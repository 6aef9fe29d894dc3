"""Turn a training run into a model: fp16 weights, calibration, thresholds, measurements on
every held-out set, plots, and the model card that says in plain words what it catches.

Every number is measured on the shipped fp16 weights through the service's own scorer,
so the card describes the file that serves, not the training copy.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from detection.ml.card import (
    FACE_RESNET,
    INCEPTION_RESNET_V1,
    Calibration,
    Evaluation,
    ModelCard,
    Thresholds,
    plot_path,
    read_card,
    write_card,
)
from detection.ml.classifier import (
    FaceClassifier,
    LoadedCheckpoint,
    load_checkpoint,
    save_checkpoint,
)
from detection.ml.config import PipelineConfig
from workbench import evaluation
from workbench.training.calibration import (
    LIMITS,
    Budgets,
    calibrated,
    choose_thresholds,
    fit_calibration,
)
from workbench.training.crops import FaceCache, prepare_faces
from workbench.training.data import LabelledFace, TrainingError, read_face_set
from workbench.training.groups import group_notice, verdicts_by_group
from workbench.training.run import RECIPES, TrainingData, blurriness, load_training_data

# The evaluations this module writes into the card; `evaluate_detector --record-as` must
# not overwrite them, as the thresholds were chosen on the same faces.
DFDC_VALIDATION = "dfdc_validation"
UTKFACE_PHOTOS = "utkface_photos"
GAN_FACES = "gan_faces"
SAMPLE_FRAMES = "sample_frames"
TRAINING_EVALUATIONS = (DFDC_VALIDATION, UTKFACE_PHOTOS, GAN_FACES)
# Every recipe trains on DFDC faces; those with self-blends also on UTKFace photos. Both sets are
# licensed for non-commercial research only, and the weights inherit that.
_RECIPES_WITH_PHOTOS = ("mix", "sbi")
_DFDC = "DFDC (DeepFake Detection Challenge; Meta, AWS, Partnership on AI)"
_SCORING_BATCH = 128
# What FaceResNet's starting weights learnt from, for the card's training data.
_DLIB_PRETRAINING = (
    "dlib's face recognition network (dlib_face_recognition_resnet_model_v1, CC0), trained by "
    "its author to tell about three million faces apart, from the VGG face data set, FaceScrub "
    "and photos gathered from the web: check those sets' own terms before commercial use"
)
# How a card describes the network its weights are for.
ARCHITECTURES = {
    INCEPTION_RESNET_V1: (
        "InceptionResnetV1 (facenet-pytorch), classify=True, one logit; trained from random "
        "initialisation"
    ),
    FACE_RESNET: (
        "FaceResNet: dlib's face recognition ResNet without its last unit, with one real/fake "
        "logit, fine-tuned here from dlib's weights (dlib_face_recognition_resnet_model_v1 by "
        "Davis E. King, CC0, trained to tell about three million faces apart)"
    ),
}
# Among real faces, how closely a model's scores follow blur (Spearman, against the negative
# Laplacian variance the quality check uses): above BLUR_NOTICE the summary warns moderators.
BLUR_CORRELATION = "blur_rank_correlation_reals"
BLUR_NOTICE = 0.3
# The least DFDC validation AUC that mirror averaging must add (see mirror_pays_off).
MIRROR_MIN_GAIN = 0.01
# How `finish` and `refit` describe the DFDC validation faces' part in the settings.
_FITTED_HERE = (
    "the calibration and, with the calibration part of the photos below, the thresholds were "
    "fitted on these faces"
)


@dataclass(frozen=True)
class FinishConfig:
    workdir: Path  # a training run's folder: its EMA weights and history
    output: Path  # the checkpoint to write; its card and plots go beside it
    dfdc_dir: Path
    utkface_dir: Path
    gan_dir: Path | None  # the out-of-scope check, never used to choose anything
    samples_dir: Path | None  # whole frames, measured through the full pipeline
    name: str
    command: str = ""
    # The false alarms its thresholds may give on real faces.
    budgets: Budgets = LIMITS


def finish(config: FinishConfig, *, log: Callable[[str], None] = print) -> ModelCard:
    ema = config.workdir / "ema.pth"
    history_file = config.workdir / "history.json"
    if not ema.is_file() or not history_file.is_file():
        raise TrainingError(f"{config.workdir} holds no finished epoch (ema.pth, history.json)")
    history = json.loads(history_file.read_text())
    run = history["config"]
    averaged = load_checkpoint(ema)
    # The shipped file holds fp16 weights: measure exactly those.
    shipped = {
        key: value.half() if value.is_floating_point() else value
        for key, value in averaged.state_dict.items()
    }
    data = load_training_data(
        config.dfdc_dir,
        config.utkface_dir,
        cache_root=config.workdir.parent / "cache",
        progress=False,
    )
    # Runs saved before the crop could be cut used the whole box.
    crop_top_cut = run.get("crop_top_cut", 0.0)
    serving, evaluations, curves = _fit_and_measure(
        shipped,
        network=averaged.network,
        input_size=run["input_size"],
        crop_top_cut=crop_top_cut,
        data=data,
        gan_dir=config.gan_dir,
        cache_root=config.workdir.parent / "cache",
        budgets=config.budgets,
        log=log,
    )

    card = ModelCard(
        name=config.name,
        trained=True,
        network=averaged.network,
        input_size=run["input_size"],
        crop_top_cut=crop_top_cut,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        architecture=ARCHITECTURES[averaged.network],
        training_data=_training_data(data, run["recipe"], averaged.network),
        thresholds=serving.thresholds,
        mirror_average=serving.mirror_average,
        calibration=serving.calibration,
        evaluations=evaluations,
        training={
            **_training_facts(history, config.command),
            "mirror_average": serving.mirror_note,
        },
        limitations=limitations(run["recipe"], averaged.network),
    )
    save_checkpoint(config.output, shipped, card, epoch=history["epoch"])
    card = _with_frames_and_summary(card, config.output, config.samples_dir, curves)
    write_card(config.output, card)
    _plot_held_out(config.output, config.name, curves)
    evaluation.plot_training(
        [tuple(point) for point in history["loss_curve"]],
        {
            name: [
                (record["images_seen"], record["checks"].get(key)) for record in history["epochs"]
            ]
            for name, key in (
                ("DFDC validation", "dfdc_validation_auc"),
                ("photo self-blends", "photo_blend_auc"),
                ("sample frames (report only)", "sample_frames_auc"),
            )
        },
        plot_path(config.output, "training"),
        title=f"{config.name}: training",
    )
    # Read back through the service's loader: a file the service rejects fails here.
    load_checkpoint(config.output)
    return card


@dataclass(frozen=True)
class MeasureConfig:
    checkpoint: Path  # a trained model with its card; the card's measurements are rewritten
    dfdc_dir: Path
    utkface_dir: Path
    gan_dir: Path | None
    samples_dir: Path | None
    cache_root: Path  # where the face cache is (or is made)

    @classmethod
    def in_folder(
        cls,
        checkpoint: Path,
        data: Path,
        *,
        cache_root: Path,
        dfdc_dir: Path | None = None,
        utkface_dir: Path | None = None,
        gan_dir: Path | None = None,
        samples_dir: Path | None = None,
    ) -> MeasureConfig:
        """The held-out sets where the shared data folder keeps them, unless given elsewhere."""
        return cls(
            checkpoint=checkpoint,
            dfdc_dir=dfdc_dir or data / "dfdc_faces",
            utkface_dir=utkface_dir or data / "utkface_faces",
            gan_dir=gan_dir or data / "gan_faces",
            samples_dir=samples_dir or data / "samples",
            cache_root=cache_root,
        )


def remeasure(config: MeasureConfig, *, log: Callable[[str], None] = print) -> ModelCard:
    """Measure a model on the held-out sets with its own calibration and thresholds, as the
    service scores, and rewrite those measurements, the summary and the limitations in its
    card.

    For a model whose card predates a measurement (the UTKFace photos, the GAN faces) or
    whose numbers predate a change of the pipeline; nothing is fitted again.
    """
    card, recipe, data, sets = _scored_with_card(config)
    thresholds = card.thresholds
    assert thresholds is not None
    evaluations, curves = _held_out_evaluations(
        sets,
        data,
        crop_top_cut=card.crop_top_cut,
        thresholds=thresholds,
        fitted=f"the model card's calibration and thresholds ({thresholds.selection})",
    )
    for key, measured in evaluations.items():
        card = card.with_evaluation(key, measured)
    # Limitations written for an older card can contradict the new numbers.
    card = dataclasses.replace(card, limitations=limitations(recipe, card.network))
    card = _with_frames_and_summary(card, config.checkpoint, config.samples_dir, curves)
    write_card(config.checkpoint, card)
    _plot_held_out(config.checkpoint, card.name, curves)
    log(f"measured {', '.join(sorted(evaluations))} and the sample frames with the card's settings")
    return card


def refit(
    config: MeasureConfig,
    *,
    command: str,
    budgets: Budgets = LIMITS,
    log: Callable[[str], None] = print,
) -> ModelCard:
    """Fit a trained model's mirror choice, calibration and thresholds again by the rules
    `finish` applies today, and measure it with them; its weights and training facts stay.

    For a model finished under older rules: the first shipped model's thresholds were set on
    DFDC video faces alone, before ordinary photos were part of the rule. Measurements made
    with the old settings are dropped, as they no longer describe what the service does.
    """
    loaded, card, _, recipe = _trained_model(config.checkpoint)
    data = load_training_data(
        config.dfdc_dir, config.utkface_dir, cache_root=config.cache_root, progress=False
    )
    serving, evaluations, curves = _fit_and_measure(
        loaded.state_dict,
        network=card.network,
        input_size=card.input_size,
        crop_top_cut=card.crop_top_cut,
        data=data,
        gan_dir=config.gan_dir,
        cache_root=config.cache_root,
        budgets=budgets,
        log=log,
    )
    before = card
    card = dataclasses.replace(
        card,
        thresholds=serving.thresholds,
        mirror_average=serving.mirror_average,
        calibration=serving.calibration,
        evaluations=evaluations,
        limitations=limitations(recipe, card.network),
        training={
            **card.training,
            "mirror_average": serving.mirror_note,
            "refitted": (
                f"{datetime.now(UTC).date().isoformat()}: mirror choice, calibration and "
                f"thresholds fitted again, weights unchanged ({command}); before: "
                f"{_settings_in_words(before)}"
            ),
        },
    )
    # The frames go through the service's pipeline, which reads the card from disk; the card
    # written meanwhile already says nothing the new settings contradict.
    write_card(config.checkpoint, _with_summary(card))
    card = _with_frames_and_summary(card, config.checkpoint, config.samples_dir, curves)
    write_card(config.checkpoint, card)
    _plot_held_out(config.checkpoint, card.name, curves)
    dropped = sorted(set(before.evaluations) - set(card.evaluations))
    if dropped:
        log(f"dropped {', '.join(dropped)}: measured with the old settings")
    return card


Curves = dict[str, tuple[np.ndarray, np.ndarray]]


def _trained_model(checkpoint: Path) -> tuple[LoadedCheckpoint, ModelCard, Thresholds, str]:
    """A checkpoint whose card says it was trained, with its thresholds and its recipe."""
    loaded = load_checkpoint(checkpoint)
    card = loaded.card
    if card is None or not card.trained or card.thresholds is None:
        raise TrainingError(f"{checkpoint} has no trained model card with thresholds")
    recipe = card.training.get("recipe")
    if recipe not in RECIPES:
        raise TrainingError(
            f"{checkpoint}'s model card names no training recipe ({', '.join(RECIPES)})"
        )
    return loaded, card, card.thresholds, recipe


@dataclass(frozen=True)
class _Serving:
    """How a model is served, fitted on held-out faces, with its scorer and the validation
    logits it gave."""

    mirror_average: bool
    mirror_note: str
    calibration: Calibration
    thresholds: Thresholds
    score: Callable[[FaceCache, list[int]], np.ndarray]
    validation_logits: np.ndarray


def _fit_and_measure(
    weights: dict[str, torch.Tensor],
    *,
    network: str,
    input_size: int,
    crop_top_cut: float,
    data: TrainingData,
    gan_dir: Path | None,
    cache_root: Path,
    budgets: Budgets,
    log: Callable[[str], None],
) -> tuple[_Serving, dict[str, Evaluation], Curves]:
    """What `finish` and `refit` share: the serving settings fitted, then the held-out sets
    measured with them."""
    serving = _fit_serving(
        weights,
        network=network,
        input_size=input_size,
        crop_top_cut=crop_top_cut,
        data=data,
        budgets=budgets,
        log=log,
    )
    sets = _held_out_sets(
        serving.score,
        data,
        validation_logits=serving.validation_logits,
        calibration=serving.calibration,
        gan_dir=gan_dir,
        cache_root=cache_root,
    )
    evaluations, curves = _held_out_evaluations(
        sets, data, crop_top_cut=crop_top_cut, thresholds=serving.thresholds, fitted=_FITTED_HERE
    )
    return serving, evaluations, curves


def _fit_serving(
    weights: dict[str, torch.Tensor],
    *,
    network: str,
    input_size: int,
    crop_top_cut: float,
    data: TrainingData,
    budgets: Budgets,
    log: Callable[[str], None],
) -> _Serving:
    """Mirror averaging where it pays for itself on the DFDC validation faces, the calibration
    on those faces, and thresholds that flag few enough of every set of held-out reals. The
    sample frames are never used to choose anything."""
    validation = data.dfdc_validation
    validation_labels = data.labels(validation)
    choices = {}
    for mirror_average in (False, True):
        score = _scorer(
            weights,
            network=network,
            input_size=input_size,
            crop_top_cut=crop_top_cut,
            mirror_average=mirror_average,
        )
        logits = score(data.cache, validation)
        auc = evaluation.roc_auc(logits, validation_labels) or 0.0
        choices[mirror_average] = (auc, score, logits)
    mirror_average = mirror_pays_off(alone=choices[False][0], mirrored=choices[True][0])
    _, score, validation_logits = choices[mirror_average]
    log(
        f"DFDC validation AUC {choices[False][0]:.4f} alone, {choices[True][0]:.4f} "
        f"with the mirror image: {'mirror averaging' if mirror_average else 'each face alone'}"
    )
    calibration = fit_calibration(validation_logits, validation_labels)
    validation_p = calibrated(validation_logits, calibration)
    photos_calibration_p = calibrated(score(data.cache, data.photos.calibration), calibration)
    thresholds = choose_thresholds(
        {
            "DFDC validation real faces": validation_p[validation_labels == 0],
            "held-out UTKFace photos (calibration part)": photos_calibration_p,
        },
        budgets,
    )
    log(
        f"temperature {calibration.temperature:.3f}, bias {calibration.bias:+.3f}; "
        f"thresholds: fake {thresholds.flag:.4f}, uncertain {thresholds.uncertain:.4f}"
    )
    return _Serving(
        mirror_average=mirror_average,
        mirror_note=(
            f"DFDC validation AUC {choices[False][0]:.4f} for each face alone, "
            f"{choices[True][0]:.4f} averaged with its mirror image: "
            + (
                "averaged"
                if mirror_average
                else f"alone (averaging must gain at least {MIRROR_MIN_GAIN} to pay for its cost)"
            )
        ),
        calibration=calibration,
        thresholds=thresholds,
        score=score,
        validation_logits=validation_logits,
    )


def mirror_pays_off(*, alone: float, mirrored: float) -> bool:
    """Whether scoring each face with its mirror image is worth it, from the DFDC validation
    AUC with and without: it doubles the classifier's work (measured with the shipped model:
    20 % more time per image, 27 % more per minute of video), so a gain inside the noise of
    4,220 faces does not pay for it."""
    return mirrored - alone >= MIRROR_MIN_GAIN


def _settings_in_words(card: ModelCard) -> str:
    thresholds = card.thresholds
    assert thresholds is not None
    return (
        f"temperature {card.calibration.temperature:.3f}, bias {card.calibration.bias:+.3f}, "
        f"thresholds fake {thresholds.flag:.4f} / uncertain {thresholds.uncertain:.4f} "
        f"({thresholds.selection}), "
        + ("mirror averaging" if card.mirror_average else "each face alone")
    )


@dataclass(frozen=True)
class ScoredSet:
    """One held-out set as a model scored it: each item's calibrated P(fake) and label, its
    name, by which two models' scores of the same set are paired, and its group (faces of one
    video share theirs; an item without one is its own)."""

    names: tuple[str, ...]
    probabilities: np.ndarray
    labels: np.ndarray
    groups: tuple[str, ...]


def held_out_scores(config: MeasureConfig) -> tuple[ModelCard, dict[str, ScoredSet]]:
    """A trained model's scores on every held-out set its card reports, as the service
    scores with the card's settings (the sample frames through the full pipeline)."""
    card, _, _, sets = _scored_with_card(config)
    if config.samples_dir is not None and config.samples_dir.is_dir():
        sets[SAMPLE_FRAMES], _ = _sample_frames(config.checkpoint, config.samples_dir)
    return card, sets


def _scored_with_card(
    config: MeasureConfig,
) -> tuple[ModelCard, str, TrainingData, dict[str, ScoredSet]]:
    """A trained model's card and recipe, the data sets, and the model's scores on their
    held-out faces with the card's settings."""
    loaded, card, _, recipe = _trained_model(config.checkpoint)
    data = load_training_data(
        config.dfdc_dir, config.utkface_dir, cache_root=config.cache_root, progress=False
    )
    score = _scorer(
        loaded.state_dict,
        network=card.network,
        input_size=card.input_size,
        crop_top_cut=card.crop_top_cut,
        mirror_average=card.mirror_average,
    )
    sets = _held_out_sets(
        score,
        data,
        validation_logits=score(data.cache, data.dfdc_validation),
        calibration=card.calibration,
        gan_dir=config.gan_dir,
        cache_root=config.cache_root,
    )
    return card, recipe, data, sets


def _held_out_sets(
    score: Callable[[FaceCache, list[int]], np.ndarray],
    data: TrainingData,
    *,
    validation_logits: np.ndarray,
    calibration: Calibration,
    gan_dir: Path | None,
    cache_root: Path,
) -> dict[str, ScoredSet]:
    """The DFDC validation faces (their logits already scored by the caller), the test part of
    the photos and the GAN check, calibrated."""

    def scored(faces: list[LabelledFace], probabilities: np.ndarray) -> ScoredSet:
        return ScoredSet(
            names=tuple(face.path.name for face in faces),
            probabilities=probabilities,
            labels=np.array([face.label for face in faces], dtype=np.float64),
            groups=tuple(face.group for face in faces),
        )

    sets = {
        DFDC_VALIDATION: scored(
            [data.faces[index] for index in data.dfdc_validation],
            calibrated(validation_logits, calibration),
        ),
        UTKFACE_PHOTOS: scored(
            [data.faces[index] for index in data.photos.test],
            calibrated(score(data.cache, data.photos.test), calibration),
        ),
    }
    if gan_dir is not None and gan_dir.is_dir():
        gan_faces = read_face_set(gan_dir, "gan")
        gan_cache = prepare_faces(gan_faces, cache_root=cache_root, workers=2, progress=False)
        sets[GAN_FACES] = scored(
            gan_faces, calibrated(score(gan_cache, list(range(len(gan_faces)))), calibration)
        )
    return sets


def _held_out_evaluations(
    sets: dict[str, ScoredSet],
    data: TrainingData,
    *,
    crop_top_cut: float,
    thresholds: Thresholds,
    fitted: str,
) -> tuple[dict[str, Evaluation], Curves]:
    """What the card says of the held-out sets a model was scored on."""
    validation, photos = sets[DFDC_VALIDATION], sets[UTKFACE_PHOTOS]
    reals = validation.labels == 0
    real_crops = data.cache.service_crops(
        np.asarray(data.dfdc_validation)[reals], top_cut=crop_top_cut
    )
    blur = blurriness(real_crops.numpy())
    blur_correlation = evaluation.rank_correlation(validation.probabilities[reals], blur)
    evaluations = {
        DFDC_VALIDATION: Evaluation(
            title="DFDC validation faces",
            metrics={
                **evaluation.metrics(
                    validation.probabilities, validation.labels, threshold=thresholds.flag
                ).as_dict(),
                BLUR_CORRELATION: None if blur_correlation is None else round(blur_correlation, 6),
            },
            note=(
                f"{len(validation.names)} faces of the DFDC videos held out by group (15 %, "
                f"seed 0), through the service's scorer with the shipped fp16 weights; {fitted}"
            ),
        ),
        UTKFACE_PHOTOS: Evaluation(
            title="ordinary photos of real people (UTKFace)",
            metrics=_flagged_shares(photos.probabilities, thresholds),
            note=(
                f"{len(photos.names)} UTKFace photos never trained on and not used for the "
                "thresholds (the test part of the held-out photos); groups by the age, gender "
                "and ethnicity UTKFace annotates"
            ),
            by_group=verdicts_by_group(
                photos.probabilities,
                [data.faces[index].attributes for index in data.photos.test],
                thresholds,
            ),
        ),
    }
    curves = {"DFDC validation": (validation.probabilities, validation.labels)}
    if GAN_FACES in sets:
        gan = sets[GAN_FACES]
        evaluations[GAN_FACES] = Evaluation(
            title="whole-face GAN images (out of scope)",
            metrics=evaluation.metrics(
                gan.probabilities, gan.labels, threshold=thresholds.flag
            ).as_dict(),
            note=(
                "StyleGAN faces against CelebA-HQ photos: a different manipulation from face "
                "swapping, measured to report, never used to tune anything"
            ),
            in_domain=False,
        )
        curves["GAN faces (out of scope)"] = (gan.probabilities, gan.labels)
    return evaluations, curves


def _with_frames_and_summary(
    card: ModelCard, checkpoint: Path, samples_dir: Path | None, curves: Curves
) -> ModelCard:
    """The sample frames through the full pipeline (the checkpoint and the card with its
    settings must be on disk: the pipeline reads them), then the summary in words."""
    thresholds = card.thresholds
    assert thresholds is not None
    if samples_dir is not None and samples_dir.is_dir():
        frames, frames_note = _sample_frames(checkpoint, samples_dir)
        frames_p, frames_labels = frames.probabilities, frames.labels
        flagged = frames_p >= thresholds.flag
        card = card.with_evaluation(
            SAMPLE_FRAMES,
            Evaluation(
                title="FaceForensics++ video frames",
                metrics={
                    **evaluation.metrics(
                        frames_p, frames_labels, threshold=thresholds.flag
                    ).as_dict(),
                    "fakes_flagged": int((flagged & (frames_labels == 1)).sum()),
                    "reals_flagged": int((flagged & (frames_labels == 0)).sum()),
                },
                note=frames_note,
                in_domain=False,
            ),
        )
        curves["FaceForensics++ frames"] = (frames_p, frames_labels)
    return _with_summary(card)


def _plot_held_out(checkpoint: Path, name: str, curves: Curves) -> None:
    evaluation.plot_roc(curves, plot_path(checkpoint, "roc"), title=f"{name}: ROC")
    evaluation.plot_reliability(
        *curves["DFDC validation"],
        plot_path(checkpoint, "reliability"),
        title="calibrated, DFDC validation",
    )


def _scorer(
    state_dict: dict[str, torch.Tensor],
    *,
    network: str,
    input_size: int,
    crop_top_cut: float,
    mirror_average: bool,
) -> Callable[[FaceCache, list[int]], np.ndarray]:
    """Logits of cached faces through the service's own classifier (float32, folded BN)."""
    classifier = FaceClassifier(
        {
            key: value.float() if value.is_floating_point() else value
            for key, value in state_dict.items()
        },
        network=network,
        input_size=input_size,
        device=torch.device("cpu"),
        mirror_average=mirror_average,
    )

    def logits(cache: FaceCache, indices: list[int]) -> np.ndarray:
        crops = cache.service_crops(indices, top_cut=crop_top_cut)
        return np.concatenate(
            [
                classifier.classify(crops[start : start + _SCORING_BATCH]).logits
                for start in range(0, len(crops), _SCORING_BATCH)
            ]
        ).astype(np.float64)

    return logits


def _flagged_shares(probabilities: np.ndarray, thresholds: Thresholds) -> dict[str, Any]:
    return {
        "count": len(probabilities),
        "flagged_fake": round(float(np.mean(probabilities >= thresholds.flag)), 6),
        "flagged_uncertain": round(float(np.mean(probabilities >= thresholds.uncertain)), 6),
    }


def _sample_frames(checkpoint: Path, folder: Path) -> tuple[ScoredSet, str]:
    """Each frame's most suspicious face through the full pipeline, as an upload is scored;
    frames where no good face was found are left out."""
    from detection.ml.pipeline import Analyzer

    analyzer = Analyzer(PipelineConfig(checkpoint=checkpoint))
    frames = sorted(folder.glob("*_frame_*.jpg"))
    with_face = [
        (path.name, result.fake_probability, int(path.name.startswith("fake")))
        for path in frames
        if (result := analyzer.analyze(path)).fake_probability is not None
    ]
    names, probabilities, labels = zip(*with_face, strict=True)
    scored = ScoredSet(
        names=names,
        probabilities=np.array(probabilities, dtype=np.float64),
        labels=np.array(labels, dtype=np.float64),
        groups=names,  # nothing says which frames share a video
    )
    note = (
        f"{len(frames)} frames of FaceForensics++ DeepFakeDetection videos "
        f"({int(scored.labels.sum())} fake) through the full pipeline (detection, crops, "
        "scoring); each frame's score is its most suspicious good face; frames without one: "
        f"{len(frames) - len(names)}. Never trained on and never used to choose a threshold"
    )
    return scored, note


def _training_data(data: TrainingData, recipe: str, network: str) -> dict[str, Any]:
    reals = sum(1 for face in data.faces if face.label == 0)
    pretrained = {"pretrained": _DLIB_PRETRAINING} if network == FACE_RESNET else {}
    return {
        **pretrained,
        "dataset": (
            f"{RECIPES[recipe]}. DFDC: one 224x224 face per video from the DeepFake Detection "
            "Challenge training set, half real, half fake. UTKFace: 9,778 aligned photos of real "
            "people aged 1 to 116. Self-blends: a real face pasted onto itself through a soft face "
            "mask after a colour, sharpness or geometry change (Shiohara & Yamasaki, CVPR 2022)."
        ),
        "licence": (
            "Research model. Trained on "
            + (
                f"{_DFDC} and UTKFace photos, both"
                if recipe in _RECIPES_WITH_PHOTOS
                else f"{_DFDC},"
            )
            + " licensed for non-commercial research only: the weights must not be used "
            "commercially without rights to the training data."
        ),
        "crops": len(data.faces),
        "real": reals,
        "fake": len(data.faces) - reals,
        "train": len(data.dfdc_train) + len(data.photos.train),
        "validation": len(data.dfdc_validation),
        "photos_calibration": len(data.photos.calibration),
        "photos_test": len(data.photos.test),
        "mtcnn_fallbacks": int(data.cache.missed.sum()),
        "split": (
            "DFDC by source video (group), 85 % / 15 %, seed 0: no video and no fake of it on "
            "both sides. UTKFace by photo: 70 % training, 15 % to set the thresholds, 15 % to "
            "check them"
        ),
        "preparation": (
            "each face through the service's MTCNN detector (padded by reflection); a context "
            "crop 1.25 times the box keeps room for box jitter and the five landmarks for the masks"
        ),
        "augmentation": (
            "for both classes: crop-box jitter (side 0.9-1.1, shift up to 6 %), mirroring, "
            "brightness/contrast/saturation, down-and-up scaling to about 80 px, blur, JPEG "
            "quality 40-100"
        ),
    }


def _training_facts(history: dict[str, Any], command: str) -> dict[str, Any]:
    run = history["config"]
    epochs = history["epochs"]
    last = epochs[-1]  # the epoch whose EMA weights are shipped
    return {
        "recipe": run["recipe"],
        "epochs_run": last["epoch"],
        "images_seen": last["images_seen"],
        "training_hours": round(last["training_hours"], 2),
        "input_size": run["input_size"],
        "batch_size": run["batch_size"],
        "optimizer": f"AdamW, weight decay {run['weight_decay']}",
        "schedule": f"linear warm-up, cosine decay from {run['learning_rate']}",
        "precision": f"{last.get('precision', 'bfloat16')} compute; weights shipped in fp16",
        "ema_decay": run["ema_decay"],
        "warm_start": _warm_start(run["init"]),
        "trained_blocks": (
            f"{run['train_from']} and after (the blocks before kept the warm start's weights)"
            if run.get("train_from")
            else "all"
        ),
        "images_per_second": round(last["images_per_second"], 1),
        "command": command,
        "history": epochs,
    }


def _warm_start(init: str | None) -> str:
    """Where the weights started, and, where that was a finished model, how it was trained:
    a model fine-tuned from another must not hide the first run behind a file name that
    exists only on the machine that trained it."""
    if init is None:
        return "none (random initialisation)"
    path = Path(init)
    card = read_card(path) if path.is_file() else None
    if card is None or not card.trained:
        return init
    facts = card.training
    described = [
        text.format(facts[key])
        for key, text in (
            ("recipe", "recipe: {}"),
            ("epochs_run", "epochs: {}"),
            ("images_seen", "images seen: {:,}"),
            ("training_hours", "training hours: {}"),
            ("trained_blocks", "trained blocks: {}"),
            ("warm_start", "its own start: {}"),
        )
        if key in facts
    ]
    return f"{init}: the finished model {card.name} ({'; '.join(described)})"


def _with_summary(card: ModelCard) -> ModelCard:
    """What a moderator needs to know, in words, with the numbers beside them."""
    thresholds = card.thresholds
    assert thresholds is not None
    sentences = []
    validation = card.evaluations[DFDC_VALIDATION].metrics
    seen = (
        "On DFDC face swaps (its training used self-blends instead; "
        if card.training.get("recipe") == "sbi"
        else "On face swaps like those it was trained on ("
    )
    sentences.append(
        f"{seen}DFDC videos it never saw, {validation['count']} faces), it calls "
        f"{_percent(validation['tpr_at_5_fpr'])} of fakes suspicious when 5 % of real faces "
        f"are, and {_percent(validation['tpr_at_1_fpr'])} when 1 % are "
        f"(AUC {validation['auc']:.2f})."
    )
    notice = blur_notice(validation)
    if notice:
        sentences.append(notice)
    photos = card.evaluations[UTKFACE_PHOTOS].metrics
    sentences.append(
        f"On ordinary photos of real people ({photos['count']} held-out photos), it wrongly says "
        f'"Likely manipulated" for {_percent(photos["flagged_fake"])} and "Uncertain" or '
        f"worse for {_percent(photos['flagged_uncertain'])}."
    )
    groups = group_notice(
        card.evaluations[UTKFACE_PHOTOS].by_group,
        photos=photos["count"],
        judged_fake=round(photos["flagged_fake"] * photos["count"]),
    )
    if groups:
        sentences.append(groups)
    if SAMPLE_FRAMES in card.evaluations:
        frames = card.evaluations[SAMPLE_FRAMES].metrics
        sentences.append(
            f"On face swaps from another source (FaceForensics++ video frames), it flags "
            f"{frames['fakes_flagged']} of {frames['fakes']} fakes and {frames['reals_flagged']} "
            f"of {frames['reals']} real frames as likely manipulated "
            f"({_frames_auc_in_words(frames)}); the other "
            f"{frames['fakes'] - frames['fakes_flagged']} fakes pass as real."
        )
    if GAN_FACES in card.evaluations:
        gan = card.evaluations[GAN_FACES].metrics
        sentences.append(
            f"It is not built for faces generated whole by a GAN or a diffusion model: on "
            f"StyleGAN faces its AUC is {gan['auc']:.2f} (0.5 is chance)."
        )
    sentences.append(
        'A score is a reason to look, never proof: "No manipulation found" means the model '
        "saw nothing, not that the photo is authentic."
    )
    return dataclasses.replace(card, summary=sentences)


def blur_notice(validation: dict[str, Any]) -> str | None:
    """A warning when the model takes blur for manipulation: its scores of real faces rise as
    the faces get blurrier (measured on the DFDC validation reals)."""
    correlation = validation.get(BLUR_CORRELATION)
    if correlation is None or correlation < BLUR_NOTICE:
        return None
    return (
        "It takes blur for a sign of manipulation: the blurrier a real face, the higher its "
        f"score (rank correlation {correlation:.2f} on real DFDC faces): soft, small or "
        "low-resolution photos of real people score higher than sharp ones."
    )


def _frames_auc_in_words(metrics: dict[str, Any]) -> str:
    """The frames' AUC with its 95 % interval, and whether so few frames can tell it from
    chance."""
    low, high = metrics.get("auc_low"), metrics.get("auc_high")
    if low is None or high is None:
        return f"AUC {metrics['auc']:.2f}"
    shown = f"AUC {metrics['auc']:.2f}, 95 % interval {low:.2f}-{high:.2f}"
    if low <= 0.5:
        return f"{shown}: {metrics['count']} frames are too few to tell it from chance"
    return shown


def _percent(value: float | None) -> str:
    """A share in words; under 10 % with one decimal, so that 0.55 % of photos does not read
    as 1 %."""
    if value is None:
        return "-"
    return f"{100 * value:.{1 if value < 0.1 else 0}f} %"


# What a model's training data leaves it blind to, by recipe: a DFDC-only model has learned one
# source's traces, a self-blend model the blend boundary every swap leaves.
_SOURCE_LIMITATIONS = {
    "dfdc": (
        "It has seen face swaps from one source only (DFDC, filmed in 2019-2020 with paid "
        "actors) and learned that source's traces: newer methods and other sources can pass as "
        "real."
    ),
    "sbi": (
        "It learned what a face swap looks like from self-blends (real faces pasted onto "
        "themselves), which teach the blended boundary and colour mismatch a swap leaves: swaps "
        "that hide both, and newer methods, can pass as real."
    ),
    "mix": (
        "It has seen face swaps from one source only (DFDC, filmed in 2019-2020 with paid "
        "actors); self-blended training teaches it the traces every face swap leaves, but newer "
        "methods and other sources can pass as real."
    ),
}
# How far its start leaves it behind state-of-the-art detectors, by network.
_START_LIMITATIONS = {
    INCEPTION_RESNET_V1: (
        "It was trained from scratch on a CPU with no pretrained face features; it is far "
        "weaker than state-of-the-art detectors."
    ),
    FACE_RESNET: (
        "It starts from face features learnt to tell people apart (dlib's face recognition "
        "network), not to find manipulation, and was fine-tuned on a CPU; it is far weaker "
        "than state-of-the-art detectors."
    ),
}
_OUT_OF_SCOPE = (
    "It is not built for faces generated whole (GAN or diffusion), lip-sync or expression "
    "transfer without a blended face boundary."
)
_LIMITATIONS = [
    "It judges one still face crop at a time; it cannot use motion, audio or several frames.",
    "Small faces (under about 60 pixels), faces in profile, covered, heavily filtered or many "
    "times re-compressed faces make its scores unreliable.",
    "A score is an estimate for human review, never proof that a photo was or was not manipulated.",
]


def limitations(recipe: str, network: str = INCEPTION_RESNET_V1) -> list[str]:
    """What a model trained with this recipe cannot do, in words a moderator reads."""
    data = "DFDC and UTKFace" if recipe in _RECIPES_WITH_PHOTOS else "DFDC data"
    return [
        _SOURCE_LIMITATIONS[recipe],
        _OUT_OF_SCOPE,
        _START_LIMITATIONS[network],
        *_LIMITATIONS,
        f"Research licence: {data} may be used for non-commercial research only.",
    ]
