"""The training run: batches of real faces, their self-blends and DFDC fakes, for hours.

Built for long runs on a small CPU that is also used for other work:
- every face is decoded and detected once, into a uint8 cache (`crops.prepare_faces`);
- one process runs the network on all cores with channels-last memory, in bf16 autocast where
  the hardware has bf16 kernels (`compute_dtype`), and one loader process blends and augments
  the next batches meanwhile;
- an exponential moving average (EMA) of the weights is kept, evaluated and shipped: it is
  smoother than the last step's weights; its batch-norm statistics are measured anew on
  training batches before each evaluation (`Run.averaged_model`);
- the whole state (weights, optimiser, schedule, EMA, random state, position in the epoch)
  is saved every few minutes and at each epoch's end: `resume` continues after any
  interruption, in this session or a later one, with the batches it would have seen.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn, update_bn
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from detection.ml.card import (
    FACE_RESNET,
    INCEPTION_RESNET_V1,
    MAX_CROP_TOP_CUT,
    NETWORKS,
    ModelCard,
    is_crop_top_cut,
)
from detection.ml.classifier import load_checkpoint, model_input, new_classifier, save_checkpoint
from detection.ml.face_resnet import UNITS
from detection.ml.quality import laplacian_variance
from detection.ml.storage import write_atomically
from workbench.evaluation import rank_correlation, roc_auc
from workbench.training.augment import jittered_crop, photo_damage
from workbench.training.blending import self_blend
from workbench.training.crops import (
    FaceCache,
    FrameFaces,
    frame_faces,
    model_crop,
    prepare_faces,
)
from workbench.training.data import (
    LabelledFace,
    PhotoSplit,
    TrainingError,
    read_face_set,
    split_by_group,
    split_photos,
)

RECIPES = {
    "mix": "real faces (DFDC and UTKFace), a self-blend of each, and DFDC fakes",
    "sbi": "real faces (DFDC and UTKFace) and a self-blend of each",
    "dfdc": "DFDC real and fake faces",
}
# Entry kinds: what one training image is made from.
REAL, BLEND, FAKE = 0, 1, 2
# Every model's DFDC validation split: 15 % of the source videos, seed 0 (comparable numbers).
DFDC_VALIDATION_FRACTION = 0.15
SPLIT_SEED = 0
_EVALUATION_BATCH = 128
# Training batches that measure the averaged model's batch-norm statistics (about 2,000 faces).
BN_CALIBRATION_BATCHES = 32
_LOSS_EVERY_STEPS = 50
HISTORY_FILE = "history.json"  # a run's settings and progress, beside its state


@dataclass(frozen=True)
class RunConfig:
    workdir: Path  # the face cache, the run's state and its EMA weights
    dfdc_dir: Path
    utkface_dir: Path
    samples_dir: Path | None = None  # whole frames, for a development curve only
    recipe: str = "mix"
    input_size: int = 128
    # The share of the detected box the model leaves out at the top (the card's
    # `crop_top_cut`): the data sets' crops end about 15 % below the top of MTCNN's box, so
    # the cache invents that band by reflection; a cut model never sees it.
    crop_top_cut: float = 0.0
    epochs: int = 12
    batch_size: int = 64  # images per step
    learning_rate: float = 1e-3
    weight_decay: float = 0.05
    ema_decay: float = 0.999
    seed: int = 0
    init: Path | None = None  # warm start from these weights
    # With `init`: train this block and those after it; the ones before keep the warm start's
    # weights and batch-norm statistics (a step then costs a forward pass through them only).
    train_from: str | None = None
    threads: int | None = None
    device: str = "cpu"
    save_every_minutes: float = 10.0
    stop_after_minutes: float | None = None  # save and stop after this long (resumable)
    command: str = ""

    def __post_init__(self) -> None:
        if self.recipe not in RECIPES:
            raise TrainingError(f"unknown recipe {self.recipe!r}: choose one of {sorted(RECIPES)}")
        if self.input_size < 75:
            raise TrainingError("input_size must be at least 75")
        if not is_crop_top_cut(self.crop_top_cut):
            raise TrainingError(f"crop_top_cut must be from 0 to below {MAX_CROP_TOP_CUT}")
        if self.epochs < 1 or self.batch_size < 2:
            raise TrainingError("epochs must be at least 1 and batch_size at least 2")
        if self.train_from is not None:
            if self.init is None:
                raise TrainingError("train_from needs init: frozen blocks keep its weights")
            # Caught here, before the data is read; whether the block is one of the warm
            # start's network is known once its weights are loaded (`Run`).
            if not any(self.train_from in blocks(network) for network in NETWORKS):
                raise TrainingError(
                    f"unknown block {self.train_from!r}: choose one of "
                    + "; ".join(f"{n}: {', '.join(blocks(n))}" for n in NETWORKS)
                )

    def signature(self) -> dict[str, Any]:
        """What must match for a saved run to be continued (the batches depend on it), except
        `epochs`: a resumed run may be given more or fewer, and its schedule is re-planned."""
        return {
            "recipe": self.recipe,
            "input_size": self.input_size,
            "crop_top_cut": self.crop_top_cut,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "weight_decay": self.weight_decay,
            "ema_decay": self.ema_decay,
            "seed": self.seed,
            "init": str(self.init) if self.init else None,
            "train_from": self.train_from,
        }

    @staticmethod
    def saved_settings(workdir: Path) -> dict[str, Any]:
        """The settings a run in `workdir` was saved with (its `signature`, by field name), so
        that `--resume` needs none of them restated; empty when nothing was saved there."""
        history = workdir / HISTORY_FILE
        if not history.is_file():
            return {}
        saved = dict(json.loads(history.read_text())["config"])
        if saved.get("init") is not None:
            saved["init"] = Path(saved["init"])
        return saved

    @property
    def state_path(self) -> Path:
        return self.workdir / "state.pt"

    @property
    def ema_path(self) -> Path:
        """The EMA weights after the last finished epoch, loadable as a checkpoint."""
        return self.workdir / "ema.pth"

    @property
    def history_path(self) -> Path:
        return self.workdir / HISTORY_FILE


# --- the data of a run --------------------------------------------------------------------


@dataclass
class TrainingData:
    faces: list[LabelledFace]  # DFDC, then UTKFace
    cache: FaceCache
    dfdc_train: list[int]
    dfdc_validation: list[int]
    photos: PhotoSplit  # indices into `faces`

    def labels(self, indices: list[int]) -> np.ndarray:
        return np.array([self.faces[i].label for i in indices], dtype=np.float32)


def load_training_data(
    dfdc_dir: Path, utkface_dir: Path, *, cache_root: Path, progress: bool
) -> TrainingData:
    dfdc = read_face_set(dfdc_dir, "dfdc")
    photos = read_face_set(utkface_dir, "utkface")
    if any(face.label for face in photos):
        raise TrainingError(f"{utkface_dir} must hold real photos only")
    faces = dfdc + photos
    cache = prepare_faces(faces, cache_root=cache_root, workers=2, progress=progress)
    dfdc_train, dfdc_validation = split_by_group(dfdc, DFDC_VALIDATION_FRACTION, SPLIT_SEED)
    photo_split = split_photos(photos, SPLIT_SEED)
    offset = len(dfdc)
    return TrainingData(
        faces=faces,
        cache=cache,
        dfdc_train=dfdc_train,
        dfdc_validation=dfdc_validation,
        photos=PhotoSplit(
            train=[offset + i for i in photo_split.train],
            calibration=[offset + i for i in photo_split.calibration],
            test=[offset + i for i in photo_split.test],
        ),
    )


def recipe_units(data: TrainingData, recipe: str) -> list[list[tuple[int, int]]]:
    """The epoch's units of (kind, face): a real face with its blend, or one face alone.

    A real face and its self-blend form one unit, so they land in the same batch and the
    network learns the difference between the two, not between two people.
    """
    dfdc_reals = [i for i in data.dfdc_train if data.faces[i].label == 0]
    dfdc_fakes = [i for i in data.dfdc_train if data.faces[i].label == 1]
    if recipe == "dfdc":
        return [[(REAL, i)] for i in dfdc_reals] + [[(FAKE, i)] for i in dfdc_fakes]
    reals = dfdc_reals + data.photos.train
    units = [[(REAL, i), (BLEND, i)] for i in reals]
    if recipe == "mix":
        units += [[(FAKE, i)] for i in dfdc_fakes]
    return units


def epoch_batches(
    units: list[list[tuple[int, int]]], *, batch_size: int, seed: int, epoch: int
) -> list[list[int]]:
    """The epoch's batches as positions into the flattened unit list, in a seeded order."""
    starts = np.cumsum([0] + [len(unit) for unit in units])
    order = np.random.default_rng((seed, epoch)).permutation(len(units))
    flat = [int(starts[u] + k) for u in order for k in range(len(units[u]))]
    return [flat[i : i + batch_size] for i in range(0, len(flat) - batch_size + 1, batch_size)]


def balanced_positive_weight(entries: list[tuple[int, int]]) -> float:
    """Balanced classes: each fake counts as much as (reals / fakes) of a real face."""
    fakes = sum(kind != REAL for kind, _ in entries)
    return (len(entries) - fakes) / fakes


class TrainingFaces(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Position in the flattened units → (3, 160, 160) uint8 face and its label.

    Each image's randomness comes from (seed, epoch, position), so an epoch's images do not
    depend on the loader processes, and a resumed run sees what it would have seen.
    """

    def __init__(
        self, cache: FaceCache, entries: list[tuple[int, int]], *, seed: int, top_cut: float
    ) -> None:
        self.cache = cache
        self.entries = entries
        self.seed = seed
        self.top_cut = top_cut
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, position: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.item(position, self.epoch)

    def item(self, position: int, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        kind, face = self.entries[position]
        rng = np.random.default_rng((self.seed, epoch, position))
        context = np.asarray(self.cache.context[face])
        if kind == BLEND:
            context, _ = self_blend(context, self.cache.landmarks[face], rng)
        pixels = photo_damage(jittered_crop(context, rng, top_cut=self.top_cut), rng)
        label = 0.0 if kind == REAL else 1.0
        return torch.from_numpy(pixels).permute(2, 0, 1), torch.tensor(label)


@dataclass(frozen=True)
class CalibrationCrops:
    """The same training batches at every epoch's end, made as the training ones are (blends,
    augmentations) under epoch number 0, which training never uses (epochs count from 1)."""

    faces: TrainingFaces
    batches: list[list[int]]

    def __iter__(self) -> Iterator[torch.Tensor]:
        for batch in self.batches:
            yield torch.stack([self.faces[position][0] for position in batch])


class _Batches(Sampler[list[int]]):
    def __init__(self, batches: list[list[int]]) -> None:
        self.batches = batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


# --- development checks -------------------------------------------------------------------


@dataclass
class DevelopmentSets:
    """Held-out faces scored after every epoch; none of them is ever trained on."""

    dfdc_crops: torch.Tensor
    dfdc_labels: np.ndarray
    # Held-out real photos and a self-blend of each: does the model see the blending?
    blend_crops: torch.Tensor
    blend_labels: np.ndarray
    frames: FrameFaces | None  # the sample frames: reported, never used to choose anything

    @functools.cached_property
    def dfdc_real_blur(self) -> np.ndarray:
        """How blurry each real DFDC face is: do the scores of real faces follow blur?"""
        return blurriness(self.dfdc_crops[self.dfdc_labels == 0].numpy())


def blurriness(crops: np.ndarray) -> np.ndarray:
    """Minus the sharpness the quality check measures, of each (3, H, W) crop: larger is
    blurrier, so a positive rank correlation with a score means the score follows blur."""
    return np.array([-laplacian_variance(crop) for crop in crops])


def development_sets(
    data: TrainingData, samples_dir: Path | None, cache_root: Path, *, top_cut: float
) -> DevelopmentSets:
    photos = data.photos.calibration
    blends = [
        self_blend(np.asarray(data.cache.context[i]), data.cache.landmarks[i], rng)[0]
        for i, rng in zip(
            photos, (np.random.default_rng((SPLIT_SEED, i)) for i in photos), strict=True
        )
    ]
    blend_faces = np.stack([model_crop(face, top_cut) for face in blends])
    real_crops = data.cache.service_crops(photos, top_cut=top_cut)
    frames = None
    if samples_dir is not None and samples_dir.is_dir():
        images = sorted(samples_dir.glob("*_frame_*.jpg"))
        labelled = [(path, int(path.name.startswith("fake"))) for path in images]
        if labelled:
            frames = frame_faces(labelled, cache_root=cache_root, top_cut=top_cut)
    return DevelopmentSets(
        dfdc_crops=data.cache.service_crops(data.dfdc_validation, top_cut=top_cut),
        dfdc_labels=data.labels(data.dfdc_validation),
        blend_crops=torch.cat([real_crops, torch.from_numpy(blend_faces).permute(0, 3, 1, 2)]),
        blend_labels=np.r_[np.zeros(len(photos)), np.ones(len(photos))],
        frames=frames,
    )


def compute_dtype(device: torch.device) -> torch.dtype:
    """bfloat16 where it is fast: a GPU, or a CPU whose oneDNN has bf16 kernels (AVX-512).

    Elsewhere oneDNN emulates bf16: on an AVX2-only CPU one training step of 64 faces at
    160 px took 87 s in bf16 autocast and 8-9 s in float32.
    """
    if device.type == "cuda" or (
        device.type == "cpu" and torch.backends.cpu.get_cpu_capability().startswith("AVX512")
    ):
        return torch.bfloat16
    return torch.float32


def _autocast(device: torch.device) -> torch.autocast:
    dtype = compute_dtype(device)
    return torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)


def logits_of(
    model: torch.nn.Module, crops: torch.Tensor, *, input_size: int, device: torch.device
) -> np.ndarray:
    """Logits of (N, 3, 160, 160) uint8 crops, in the precision the training run computes in."""
    model.eval()
    outputs = []
    with torch.inference_mode(), _autocast(device):
        for start in range(0, len(crops), _EVALUATION_BATCH):
            batch = model_input(
                crops[start : start + _EVALUATION_BATCH].to(device), input_size=input_size
            )
            outputs.append(
                model(batch.contiguous(memory_format=torch.channels_last)).reshape(-1).float().cpu()
            )
    return torch.cat(outputs).numpy().astype(np.float64) if outputs else np.zeros(0)


def image_scores(face_logits: np.ndarray, frames: FrameFaces) -> tuple[np.ndarray, np.ndarray]:
    """Per image, its most suspicious good face's logit, as the service scores an image and
    the model card counts it: images without a face that passes the quality check are left
    out."""
    owners = frames.image_of_face[frames.judged]
    logits = face_logits[frames.judged]
    scored = np.unique(owners)
    best = np.array([logits[owners == image].max() for image in scored])
    return best, frames.labels[scored]


def development_checks(
    model: torch.nn.Module, sets: DevelopmentSets, *, input_size: int, device: torch.device
) -> dict[str, float | None]:
    dfdc = logits_of(model, sets.dfdc_crops, input_size=input_size, device=device)
    blends = logits_of(model, sets.blend_crops, input_size=input_size, device=device)
    checks: dict[str, float | None] = {
        "dfdc_validation_auc": roc_auc(dfdc, sets.dfdc_labels),
        "dfdc_validation_loss": float(
            F.binary_cross_entropy_with_logits(
                torch.from_numpy(dfdc), torch.from_numpy(sets.dfdc_labels.astype(np.float64))
            )
        ),
        # The card's blur measurement, on the same faces, but of the logits (same ranks).
        "dfdc_blur_rank_correlation_reals": rank_correlation(
            dfdc[sets.dfdc_labels == 0], sets.dfdc_real_blur
        ),
        "photo_blend_auc": roc_auc(blends, sets.blend_labels),
        "sample_frames_auc": None,
    }
    if sets.frames is not None and sets.frames.judged.any():
        faces = logits_of(model, sets.frames.crops, input_size=input_size, device=device)
        checks["sample_frames_auc"] = roc_auc(*image_scores(faces, sets.frames))
    return checks


# --- the run ------------------------------------------------------------------------------


@dataclass
class EpochRecord:
    epoch: int
    images_seen: int
    training_hours: float
    train_loss: float
    learning_rate: float
    images_per_second: float
    checks: dict[str, float | None]
    precision: str = "bfloat16"  # what the network computed in (runs before the choice: bf16)


@dataclass
class RunProgress:
    """Everything of a run that is not a tensor; saved with the weights."""

    epoch: int = 0  # epochs finished
    next_batch: int = 0  # position in the current epoch
    images_seen: int = 0
    training_seconds: float = 0.0
    epochs: list[EpochRecord] = field(default_factory=list)
    loss_curve: list[tuple[int, float]] = field(default_factory=list)  # (images seen, loss)


class Run:
    """The model, optimiser, schedule and EMA of one training run, with its saved state."""

    def __init__(self, config: RunConfig, device: torch.device, steps_per_epoch: int) -> None:
        torch.manual_seed(config.seed)
        self.config = config
        self.device = device
        # The network is the warm start's: FaceResNet runs start from dlib's weights.
        warm_start = load_checkpoint(config.init) if config.init is not None else None
        self.network = warm_start.network if warm_start else INCEPTION_RESNET_V1
        if config.train_from is not None and config.train_from not in blocks(self.network):
            raise TrainingError(
                f"unknown block {config.train_from!r} of {self.network}: choose one of "
                f"{', '.join(blocks(self.network))}"
            )
        self.model = new_classifier(self.network).to(device)
        if warm_start is not None:
            self.model.load_state_dict(warm_start.state_dict)
        self.model = self.model.to(memory_format=torch.channels_last)
        self.frozen = frozen_blocks(self.model, self.network, config.train_from)
        self.steps_per_epoch = steps_per_epoch
        self.ema = AveragedModel(
            self.model, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay), use_buffers=True
        )
        self.optimizer = torch.optim.AdamW(
            [p for p in self.model.parameters() if p.requires_grad],
            lr=config.learning_rate,
            weight_decay=config.weight_decay,
        )
        self.schedule = Schedule.planned(total=config.epochs * steps_per_epoch)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: self.schedule.factor(step)
        )
        self.progress = RunProgress()

    def step(self, crops: torch.Tensor, labels: torch.Tensor, positive_weight: float) -> float:
        self.model.train()
        for name in self.frozen:
            self.model.get_submodule(name).eval()
        batch = model_input(crops.to(self.device), input_size=self.config.input_size)
        batch = batch.contiguous(memory_format=torch.channels_last)
        targets = labels.to(self.device)
        with _autocast(self.device):
            logits = self.model(batch).reshape(-1)
        loss = F.binary_cross_entropy_with_logits(
            logits.float(), targets, pos_weight=torch.tensor(positive_weight, device=self.device)
        )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.ema.update_parameters(self.model)
        self.progress.images_seen += len(labels)
        return float(loss.item())

    @property
    def learning_rate(self) -> float:
        return float(self.scheduler.get_last_lr()[0])

    def save(self) -> None:
        state = {
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            # JSON text: weights-only loading takes strings but not dataclasses.
            "progress": json.dumps(asdict(self.progress)),
            "signature": self.config.signature(),
            "schedule": asdict(self.schedule),
        }
        write_atomically(self.config.state_path, lambda handle: torch.save(state, handle))
        history = {"config": self.config.signature(), **asdict(self.progress)}
        text = json.dumps(history, indent=1)
        write_atomically(self.config.history_path, lambda handle: handle.write(text.encode()))

    def restore(self) -> str | None:
        """Load the saved run; returns how its schedule was re-planned, if `epochs` changed."""
        state = torch.load(self.config.state_path, map_location=self.device, weights_only=True)
        # Runs saved before the crop could be cut used the whole box.
        saved = {"crop_top_cut": 0.0, **state["signature"]}
        wanted = self.config.signature()
        differences = {
            k: (saved.get(k), v) for k, v in wanted.items() if saved.get(k) != v and k != "epochs"
        }
        if differences:
            raise TrainingError(f"cannot resume with other settings (saved, asked): {differences}")
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        progress = json.loads(state["progress"])
        progress["epochs"] = [EpochRecord(**record) for record in progress["epochs"]]
        progress["loss_curve"] = [tuple(point) for point in progress["loss_curve"]]
        self.progress = RunProgress(**progress)
        # Runs saved before schedules were stored followed the plan of their epochs.
        self.schedule = (
            Schedule(**state["schedule"])
            if "schedule" in state
            else Schedule.planned(total=saved["epochs"] * self.steps_per_epoch)
        )
        step, total = self.scheduler.last_epoch, self.config.epochs * self.steps_per_epoch
        if saved["epochs"] == self.config.epochs or total <= step:
            return None
        self.schedule = self.schedule.replanned(step=step, total=total)
        return (
            f"re-planned for {self.config.epochs} epochs instead of {saved['epochs']}: from "
            f"step {step}, the learning rate decays from {self.learning_rate:.3g} to 1 % of "
            f"its peak at step {total}"
        )

    def averaged_model(self, calibration: Iterable[torch.Tensor]) -> nn.Module:
        """The EMA weights, with batch-norm statistics measured anew on `calibration` crops.

        The EMA averages the running means and variances along with the weights, but the
        average of the statistics is not the statistics the averaged weights produce: from
        scratch, while the weights still move fast, the EMA's DFDC validation AUC read 0.47
        with its averaged statistics and 0.69 with measured ones. The EMA itself is left as
        it is, so a resumed run goes on exactly as it would have.
        """
        model = copy.deepcopy(self.ema.module)
        batches = (
            model_input(crops.to(self.device), input_size=self.config.input_size).contiguous(
                memory_format=torch.channels_last
            )
            for crops in calibration
        )
        with torch.random.fork_rng():  # dropout draws here must not shift training's draws
            update_bn(batches, model)
        for name in self.frozen:  # as trained: with the warm start's statistics
            model.get_submodule(name).load_state_dict(
                self.ema.module.get_submodule(name).state_dict()
            )
        return model.eval()

    def export(self, model: nn.Module) -> None:
        """Save the averaged model as the run's loadable checkpoint (`ema.pth`), with a card
        that says it is unfinished and, above all, at which size it sees faces: without a card
        a checkpoint is read at the published model's size and its scores mean nothing."""
        weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        card = ModelCard(
            name=f"{self.config.workdir.name}, epoch {self.progress.epoch} (unfinished)",
            trained=False,
            network=self.network,
            input_size=self.config.input_size,
            crop_top_cut=self.config.crop_top_cut,
            summary=[
                "The averaged weights of a training run that is not finished: uncalibrated, "
                "with no thresholds of its own. `train_detector --finish` makes a model of it."
            ],
        )
        save_checkpoint(self.config.ema_path, weights, card, epoch=self.progress.epoch)


@functools.cache
def blocks(network: str) -> tuple[str, ...]:
    """A network's blocks in the order the input flows through them: InceptionResnetV1's
    children (read from a network built on first use: building one costs a fraction of a
    second that an import should not pay), FaceResNet's stem, residual units and logit."""
    if network == FACE_RESNET:
        return ("stem", *(f"units.{i}" for i in range(len(UNITS))), "logit")
    return tuple(name for name, _ in new_classifier(network).named_children())


def frozen_blocks(model: nn.Module, network: str, train_from: str | None) -> list[str]:
    """Stop the gradients of the blocks before `train_from`; returns their names."""
    if train_from is None:
        return []
    frozen = list(blocks(network)[: blocks(network).index(train_from)])
    for name in frozen:
        model.get_submodule(name).requires_grad_(False)
    return frozen


@dataclass(frozen=True)
class Schedule:
    """The learning rate per step, as a share of the peak: a linear warm-up, then a cosine
    decay from `start_factor` at step `decay_from` to 1 % at step `total`."""

    warmup: int
    total: int
    decay_from: int
    start_factor: float = 1.0

    @classmethod
    def planned(cls, *, total: int) -> Schedule:
        warmup = min(1000, max(1, total // 20))
        return cls(warmup=warmup, total=total, decay_from=warmup)

    def factor(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        done = min(1.0, (step - self.decay_from) / max(1, self.total - self.decay_from))
        return 0.01 + (self.start_factor - 0.01) * 0.5 * (1 + math.cos(math.pi * done))

    def replanned(self, *, step: int, total: int) -> Schedule:
        """The same run ending at `total` instead: from `step` on, the decay starts at the
        learning rate it has reached, so a shortened run still anneals and a longer one
        does not jump back up."""
        if step < self.warmup:
            return replace(self, total=total)
        return Schedule(
            warmup=self.warmup, total=total, decay_from=step, start_factor=self.factor(step)
        )


def train(
    config: RunConfig, *, resume: bool, progress: bool = True, log: Callable[[str], None] = print
) -> Run:
    """Train until the configured epochs are done or the time budget is spent (resumable)."""
    started = time.monotonic()
    torch.set_num_threads(config.threads or torch.get_num_threads())
    device = torch.device(config.device)
    if config.state_path.is_file() and not resume:
        raise TrainingError(
            f"{config.workdir} holds a saved run: continue it with --resume, or choose "
            "another --workdir"
        )
    if resume and not config.state_path.is_file():
        raise TrainingError(f"nothing to resume: {config.state_path} does not exist")
    data = load_training_data(
        config.dfdc_dir,
        config.utkface_dir,
        cache_root=config.workdir.parent / "cache",
        progress=progress,
    )
    units = recipe_units(data, config.recipe)
    entries = [entry for unit in units for entry in unit]
    fakes = sum(kind != REAL for kind, _ in entries)
    positive_weight = balanced_positive_weight(entries)
    log(
        f"recipe {config.recipe} ({RECIPES[config.recipe]}): {len(entries)} images per epoch, "
        f"{len(entries) - fakes} real and {fakes} fake; "
        f"missed by MTCNN: {int(data.cache.missed.sum())}"
    )
    dataset = TrainingFaces(data.cache, entries, seed=config.seed, top_cut=config.crop_top_cut)
    calibration_batches = epoch_batches(
        units, batch_size=config.batch_size, seed=config.seed, epoch=0
    )[:BN_CALIBRATION_BATCHES]
    calibration = CalibrationCrops(
        TrainingFaces(data.cache, entries, seed=config.seed, top_cut=config.crop_top_cut),
        calibration_batches,
    )
    steps = len(epoch_batches(units, batch_size=config.batch_size, seed=config.seed, epoch=0))
    run = Run(config, device, steps)
    if resume:
        replanned = run.restore()
        if replanned:
            log(replanned)
        log(
            f"resuming at epoch {run.progress.epoch + 1}, batch {run.progress.next_batch} of "
            f"{steps} ({run.progress.images_seen} images seen)"
        )
    if run.progress.epoch >= config.epochs:
        log(f"the run is complete: all {config.epochs} epochs are done")
        return run
    checks = development_sets(
        data, config.samples_dir, config.workdir.parent / "cache", top_cut=config.crop_top_cut
    )
    last_save = time.monotonic()
    while run.progress.epoch < config.epochs:
        epoch = run.progress.epoch + 1
        batches = epoch_batches(units, batch_size=config.batch_size, seed=config.seed, epoch=epoch)
        dataset.epoch = epoch
        loader = DataLoader(
            dataset,
            batch_sampler=_Batches(batches[run.progress.next_batch :]),
            # One helper process blends and augments the next batches while the cores run
            # the network; more would only take cores from it.
            num_workers=1,
            prefetch_factor=4,
            # Its own generator: starting a loader must not draw from the global random state,
            # which drives dropout and is saved with the run (a resumed run would drift).
            generator=torch.Generator().manual_seed(config.seed),
        )
        epoch_loss, epoch_images, epoch_started = 0.0, 0, time.monotonic()
        window: list[float] = []
        bar = tqdm(
            loader,
            desc=f"epoch {epoch}/{config.epochs}",
            initial=run.progress.next_batch,
            total=len(batches),
            disable=not progress,
            mininterval=10,
        )
        for crops, labels in bar:
            step_started = time.monotonic()
            loss = run.step(crops, labels, positive_weight)
            run.progress.training_seconds += time.monotonic() - step_started
            run.progress.next_batch += 1
            epoch_loss += loss * len(labels)
            epoch_images += len(labels)
            window.append(loss)
            if len(window) == _LOSS_EVERY_STEPS:
                run.progress.loss_curve.append((run.progress.images_seen, float(np.mean(window))))
                window = []
                bar.set_postfix(loss=f"{run.progress.loss_curve[-1][1]:.4f}", refresh=False)
            if time.monotonic() - last_save > 60 * config.save_every_minutes:
                run.save()
                last_save = time.monotonic()
            budget = config.stop_after_minutes
            if budget is not None and time.monotonic() - started > 60 * budget:
                run.save()
                log(f"stopped after {budget} minutes; continue with --resume")
                return run
        bar.close()
        seconds = time.monotonic() - epoch_started
        averaged = run.averaged_model(calibration)
        record = EpochRecord(
            epoch=epoch,
            images_seen=run.progress.images_seen,
            training_hours=run.progress.training_seconds / 3600,
            train_loss=epoch_loss / max(epoch_images, 1),
            learning_rate=run.learning_rate,
            images_per_second=epoch_images / max(seconds, 1e-9),
            precision=str(compute_dtype(device)).removeprefix("torch."),
            checks=development_checks(
                averaged, checks, input_size=config.input_size, device=device
            ),
        )
        run.progress.epochs.append(record)
        run.progress.epoch, run.progress.next_batch = epoch, 0
        run.export(averaged)
        run.save()
        last_save = time.monotonic()
        log(
            f"epoch {epoch}: loss {record.train_loss:.4f}, "
            f"{record.images_per_second:.1f} images/s; EMA: "
            + ", ".join(f"{k} {_shown(v)}" for k, v in record.checks.items())
        )
    return run


def _shown(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
