"""Train the real/fake classifier on labelled face crops, calibrate it, write it with its card.

The model must learn on what the service will show it. So every training crop goes through
the service's own face path (MTCNN via `FaceDetector`, then `crop_faces`), and through the
same preprocessing (`classifier.model_input`); the augmentations imitate what happens to
uploaded photos (mirroring, re-compression, rescaling, blur, colour changes) and act on the
0-255 crop before that preprocessing, as an upload's damage happens before the service.

Everything that is slow runs once: the prepared crops are cached as one uint8 tensor file,
each epoch ends with a resumable checkpoint, and the best epoch's weights are kept apart.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageEnhance, ImageFilter, ImageOps
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from detection.ml import evaluation
from detection.ml.classifier import (
    FaceClassifier,
    load_checkpoint,
    model_card_path,
    model_input,
    new_classifier,
)
from detection.ml.faces import CROP_SIZE, FaceDetector, crop_faces
from detection.ml.storage import write_atomically

LABELS = {"real": 0, "fake": 1}
# Bump when the preparation below changes, so that a stale cache is never reused.
PREPARATION_VERSION = 1
# The DFDC crops are tighter than MTCNN's box; a quarter of the side on every edge gives the
# detector the forehead, chin and background context it expects.
PAD_FRACTION = 0.25
# The padded crop holds one face about 150-220 px wide; skipping the tiny pyramid levels
# saves time without changing what is found at that size.
PREPARATION_MIN_FACE = 80
# A detection that overlaps the known face region this little is a mirrored ghost from the
# reflection padding, not the face.
MIN_FACE_OVERLAP = 0.3
DETECTION_THRESHOLD = 0.95  # the service's default FACE_DETECTION_THRESHOLD
LICENCE = (
    "DFDC (DeepFake Detection Challenge) training data, Meta/AWS/Partnership on AI: licensed "
    "for non-commercial research only. A model trained on it is a research model; it must not "
    "be used commercially without rights to the training data."
)
_VALIDATION_BATCH = 128
_PREPARATION_CHUNK = 200


class TrainingError(Exception):
    """The data, the cache or a resumed run does not fit the requested training."""


@dataclass(frozen=True)
class LabelledCrop:
    file: str
    label: int  # 0 real, 1 fake
    group: str  # the source video; a fake shares it with the real video it was made from


@dataclass(frozen=True)
class TrainingConfig:
    data_dir: Path
    output: Path  # the checkpoint to write; its card, plots sit beside it
    workdir: Path  # crop cache and per-epoch training state
    input_size: int = 160
    epochs: int = 4
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 0.05
    val_fraction: float = 0.15
    patience: int = 2
    limit: int | None = None  # train on about this many crops (whole groups) only
    seed: int = 0
    threads: int | None = None
    device: str = "cpu"
    resume: bool = False
    command: str = ""  # recorded in the model card

    def resume_signature(self) -> dict[str, Any]:
        """What must match for a saved run to be continued (the schedule depends on it)."""
        return {
            "input_size": self.input_size,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "weight_decay": self.weight_decay,
            "val_fraction": self.val_fraction,
            "limit": self.limit,
            "seed": self.seed,
        }


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    train_loss: float
    validation_auc: float | None
    validation_loss: float
    learning_rate: float
    seconds: float
    images_per_second: float


@dataclass
class PreparedCrops:
    files: list[str]
    crops: torch.Tensor  # (N, 3, 160, 160) uint8, the pipeline's crops
    fallback: torch.Tensor  # (N,) bool: MTCNN found no face, the crop was resized whole


@dataclass
class TrainingResult:
    checkpoint: Path
    card: dict[str, Any]
    history: list[EpochRecord] = field(default_factory=list)


# --- data ---------------------------------------------------------------------------------


def read_labels(data_dir: Path) -> list[LabelledCrop]:
    labels_file = data_dir / "labels.csv"
    if not labels_file.is_file():
        raise TrainingError(f"{labels_file} not found (the crops' README describes it)")
    with labels_file.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    missing = {"file", "label", "group"} - set(rows[0] if rows else {})
    if missing:
        raise TrainingError(f"{labels_file} lacks the columns {sorted(missing)}")
    unknown = sorted({row["label"] for row in rows} - set(LABELS))
    if unknown:
        raise TrainingError(f"{labels_file}: labels must be real or fake, found {unknown}")
    return [LabelledCrop(row["file"], LABELS[row["label"]], row["group"]) for row in rows]


def limit_by_group(rows: list[LabelledCrop], limit: int, seed: int) -> list[LabelledCrop]:
    """About `limit` crops made of whole groups in a seeded random order.

    Most groups are a real video with the fake made from it, so whole groups keep the two
    classes close to balanced, and the split below can still separate groups.
    """
    by_group = _grouped(rows)
    names = sorted(by_group)
    np.random.default_rng(seed).shuffle(names)
    chosen: list[LabelledCrop] = []
    for name in names:
        if len(chosen) >= limit:
            break
        chosen.extend(by_group[name])
    return sorted(chosen, key=lambda row: row.file)


def split_by_group(
    rows: Sequence[LabelledCrop], val_fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """Indices of training and validation rows; no group has rows on both sides."""
    if not 0 < val_fraction < 1:
        raise TrainingError("the validation fraction must be between 0 and 1")
    groups = sorted({row.group for row in rows})
    np.random.default_rng(seed).shuffle(groups)
    validation_groups = set(groups[: max(1, round(val_fraction * len(groups)))])
    train = [i for i, row in enumerate(rows) if row.group not in validation_groups]
    validation = [i for i, row in enumerate(rows) if row.group in validation_groups]
    if not train or len({rows[i].label for i in validation}) < 2:
        raise TrainingError(
            "too few groups to split: validation needs both real and fake faces "
            "(raise --limit or --val-fraction)"
        )
    return train, validation


def _grouped(rows: Sequence[LabelledCrop]) -> dict[str, list[LabelledCrop]]:
    by_group: dict[str, list[LabelledCrop]] = {}
    for row in rows:
        by_group.setdefault(row.group, []).append(row)
    return by_group


def prepare_crops(
    rows: Sequence[LabelledCrop],
    *,
    data_dir: Path,
    cache_dir: Path,
    workers: int,
    progress: bool = True,
) -> PreparedCrops:
    """Every crop through the service's MTCNN path, cached so that this runs once per set."""
    files = [row.file for row in rows]
    digest = hashlib.sha256("\n".join([str(data_dir.resolve()), *files]).encode()).hexdigest()
    cache = cache_dir / f"crops-v{PREPARATION_VERSION}-{len(files)}-{digest[:12]}.pt"
    if cache.is_file():
        stored = torch.load(cache, map_location="cpu", weights_only=True)
        if stored["files"] != files:
            raise TrainingError(f"{cache} holds other files; delete it to prepare again")
        return PreparedCrops(files=files, crops=stored["crops"], fallback=stored["fallback"])

    paths = [str(data_dir / "faces" / name) for name in files]
    chunks = [paths[i : i + _PREPARATION_CHUNK] for i in range(0, len(paths), _PREPARATION_CHUNK)]
    crops = torch.empty((len(paths), 3, CROP_SIZE, CROP_SIZE), dtype=torch.uint8)
    fallback = torch.zeros(len(paths), dtype=torch.bool)
    bar = tqdm(total=len(paths), desc="preparing crops", unit="crop", disable=not progress)
    position = 0
    # Each process runs its own single-threaded detector: MTCNN on one small image cannot
    # keep two threads busy, two processes can.
    context = multiprocessing.get_context("fork")
    with context.Pool(max(1, workers), initializer=_start_preparation_worker) as pool:
        for chunk_crops, chunk_fallback in pool.imap(_prepare_chunk, chunks):
            crops[position : position + len(chunk_crops)] = torch.from_numpy(chunk_crops)
            fallback[position : position + len(chunk_crops)] = torch.from_numpy(chunk_fallback)
            position += len(chunk_crops)
            bar.update(len(chunk_crops))
            bar.set_postfix(fallbacks=int(fallback.sum()))
    bar.close()
    payload = {"files": files, "crops": crops, "fallback": fallback}
    write_atomically(cache, lambda handle: torch.save(payload, handle))
    return PreparedCrops(files=files, crops=crops, fallback=fallback)


_detector: FaceDetector | None = None


def _start_preparation_worker() -> None:
    global _detector
    torch.set_num_threads(1)
    _detector = _new_detector()


def _new_detector() -> FaceDetector:
    return FaceDetector(
        min_face_size=PREPARATION_MIN_FACE,
        probability_threshold=DETECTION_THRESHOLD,
        max_side=1024,
        device=torch.device("cpu"),
    )


def _prepare_chunk(paths: list[str]) -> tuple[np.ndarray, np.ndarray]:
    detector = _detector or _new_detector()
    results = [service_face_crop(Image.open(path).convert("RGB"), detector) for path in paths]
    return (
        np.stack([crop for crop, _ in results]),
        np.array([fell_back for _, fell_back in results], dtype=bool),
    )


def service_face_crop(tight_crop: Image.Image, detector: FaceDetector) -> tuple[np.ndarray, bool]:
    """(3, 160, 160) uint8 as the service would crop this face, and whether MTCNN missed it.

    The tight crop is padded by reflection (plain borders look like nothing in a photo),
    the detector runs on the padded image, and the detection that best covers the original
    crop is cut with the service's `crop_faces`. When MTCNN finds nothing there, the crop is
    resized whole, as facenet's cropper would resize a box around it.
    """
    width, height = tight_crop.size
    pad_x, pad_y = round(PAD_FRACTION * width), round(PAD_FRACTION * height)
    pixels = np.asarray(tight_crop)
    padded = Image.fromarray(np.pad(pixels, ((pad_y, pad_y), (pad_x, pad_x), (0, 0)), "reflect"))
    known = (pad_x, pad_y, pad_x + width, pad_y + height)
    overlaps = [(_iou(face.box, known), face.box) for face in detector.detect(padded)]
    best = max(overlaps, default=None, key=lambda pair: pair[0])
    if best is None or best[0] < MIN_FACE_OVERLAP:
        resized = tight_crop.resize((CROP_SIZE, CROP_SIZE), Image.Resampling.BILINEAR)
        return np.asarray(resized).transpose(2, 0, 1).copy(), True
    crop = crop_faces(padded, [best[1]])[0]
    return crop.round().clamp(0, 255).to(torch.uint8).numpy(), False


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    overlap = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - overlap
    return overlap / union if union > 0 else 0.0


# --- augmentation -------------------------------------------------------------------------


def augment_crop(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) uint8 → the same face as an upload might have damaged it.

    Order follows a photo's life: edits (mirroring, colour) first, then downscaling by a
    platform, blur, and JPEG re-compression last, as it is the last thing done to an upload.
    """
    image = Image.fromarray(crop)
    if rng.random() < 0.5:
        image = ImageOps.mirror(image)
    if rng.random() < 0.5:
        for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
            image = enhancer(image).enhance(rng.uniform(0.75, 1.25))
    if rng.random() < 0.3:
        scale = rng.uniform(0.35, 0.9)
        small = (max(8, round(image.width * scale)), max(8, round(image.height * scale)))
        image = image.resize(small, Image.Resampling.BILINEAR).resize(
            crop.shape[1::-1], Image.Resampling.BILINEAR
        )
    if rng.random() < 0.2:
        image = image.filter(ImageFilter.GaussianBlur(radius=rng.uniform(0.4, 1.6)))
    if rng.random() < 0.6:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=int(rng.integers(35, 96)))
        buffer.seek(0)
        image = Image.open(buffer).convert("RGB")
    return np.asarray(image)


class FaceCrops(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Prepared crops as (3, 160, 160) uint8 tensors, augmented for training.

    Each item's randomness comes from (seed, epoch, index), so an epoch's augmentations do
    not depend on the number of loader processes, and a resumed run sees what it would have.
    """

    def __init__(
        self, crops: torch.Tensor, labels: torch.Tensor, *, augment: bool, seed: int
    ) -> None:
        self.crops = crops
        self.labels = labels
        self.augment = augment
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        crop = self.crops[index]
        if self.augment:
            rng = np.random.default_rng((self.seed, self.epoch, index))
            pixels = augment_crop(crop.permute(1, 2, 0).numpy(), rng)
            crop = torch.from_numpy(pixels.transpose(2, 0, 1).copy())
        return crop, self.labels[index]


# --- training -----------------------------------------------------------------------------


def train(
    config: TrainingConfig,
    *,
    progress: bool = True,
    log: Callable[[str], None] = print,
    on_epoch_end: Callable[[EpochRecord], None] | None = None,
) -> TrainingResult:
    """Prepare, train with early stopping, calibrate, choose thresholds, write model + card."""
    started = time.perf_counter()
    if config.input_size < 75:
        raise TrainingError("input_size must be at least 75")
    if config.threads:
        torch.set_num_threads(config.threads)
    device = torch.device(config.device)
    rows = read_labels(config.data_dir)
    if config.limit:
        rows = limit_by_group(rows, config.limit, config.seed)
    prepared = prepare_crops(
        rows,
        data_dir=config.data_dir,
        cache_dir=config.workdir,
        # Single-threaded processes, one per core: unlike torch's OpenMP threads they do not
        # stall when another program on the machine takes a core.
        workers=os.cpu_count() or 1,
        progress=progress,
    )
    preparation_seconds = time.perf_counter() - started
    log(
        f"{len(rows)} crops prepared in {preparation_seconds:.0f} s; MTCNN missed "
        f"{int(prepared.fallback.sum())} (resized whole)"
    )
    labels = torch.tensor([row.label for row in rows], dtype=torch.float32)
    train_index, validation_index = split_by_group(rows, config.val_fraction, config.seed)
    training_set = FaceCrops(
        prepared.crops[train_index], labels[train_index], augment=True, seed=config.seed
    )
    validation_crops = prepared.crops[validation_index]
    validation_labels = labels[validation_index]
    log(f"split by group: {len(train_index)} training, {len(validation_index)} validation crops")

    run = _Run(config, device, steps_per_epoch=math.ceil(len(training_set) / config.batch_size))
    if config.resume:
        run.restore(log)
    while run.epoch < config.epochs and run.stale_epochs < config.patience:
        record = run.train_epoch(training_set, validation_crops, validation_labels, progress)
        log(
            f"epoch {record.epoch}/{config.epochs}: loss {record.train_loss:.4f}, validation "
            f"AUC {_shown(record.validation_auc)}, {record.images_per_second:.1f} images/s"
        )
        if on_epoch_end:
            on_epoch_end(record)
    if run.stale_epochs >= config.patience and run.epoch < config.epochs:
        log(f"stopped early: no better validation AUC for {config.patience} epochs")

    best_state = torch.load(run.best_path, map_location="cpu", weights_only=True)
    # The shipped file holds fp16 weights; measure exactly those, through the service's
    # own scorer, so that the card describes the file and not the training copy.
    shipped = {
        key: value.half() if value.is_floating_point() else value
        for key, value in best_state.items()
    }
    logits = _service_logits(shipped, validation_crops, config.input_size, device)
    card = _finish(
        config,
        run,
        shipped,
        logits,
        validation_labels.numpy(),
        counts={
            "crops": len(rows),
            "real": int((labels == 0).sum()),
            "fake": int((labels == 1).sum()),
            "train": len(train_index),
            "validation": len(validation_index),
            "groups": len({row.group for row in rows}),
            "mtcnn_fallbacks": int(prepared.fallback.sum()),
        },
        seconds={
            "preparation": preparation_seconds,
            "total": time.perf_counter() - started,
        },
    )
    log(f"wrote {config.output} and {model_card_path(config.output)}")
    return TrainingResult(checkpoint=config.output, card=card, history=run.history)


class _Run:
    """The model, optimiser and schedule of one training run, with its saved state."""

    def __init__(self, config: TrainingConfig, device: torch.device, steps_per_epoch: int) -> None:
        torch.manual_seed(config.seed)
        self.config = config
        self.device = device
        self.model = new_classifier().to(device).to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
            self.optimizer,
            max_lr=config.learning_rate,
            total_steps=config.epochs * steps_per_epoch,
            pct_start=0.2,
        )
        # bf16 keeps float32's range, so no loss scaling; fp16 (older GPUs) needs it.
        self.amp_dtype = (
            torch.float16
            if device.type == "cuda" and not torch.cuda.is_bf16_supported()
            else torch.bfloat16
        )
        self.scaler = torch.amp.GradScaler(
            device.type, enabled=self.amp_dtype == torch.float16 and device.type == "cuda"
        )
        self.epoch = 0
        self.best_auc = -math.inf
        self.best_epoch = 0
        self.stale_epochs = 0
        self.history: list[EpochRecord] = []
        self.training_seconds = 0.0
        self.images_seen = 0
        stem = config.output.stem
        self.state_path = config.workdir / f"{stem}.last.pt"
        self.best_path = config.workdir / f"{stem}.best.pt"

    def restore(self, log: Callable[[str], None]) -> None:
        if not self.state_path.is_file():
            raise TrainingError(f"nothing to resume: {self.state_path} does not exist")
        state = torch.load(self.state_path, map_location=self.device, weights_only=True)
        saved, wanted = state["signature"], self.config.resume_signature()
        if saved != wanted:
            differences = {k: (saved.get(k), v) for k, v in wanted.items() if saved.get(k) != v}
            raise TrainingError(f"cannot resume with other settings (saved, asked): {differences}")
        self.model.load_state_dict(state["model_state_dict"])
        self.optimizer.load_state_dict(state["optimizer_state_dict"])
        self.scheduler.load_state_dict(state["scheduler_state_dict"])
        self.scaler.load_state_dict(state["scaler_state_dict"])
        self.epoch = int(state["epoch"])
        self.best_auc = float(state["best_auc"])
        self.best_epoch = int(state["best_epoch"])
        self.stale_epochs = int(state["stale_epochs"])
        self.training_seconds = float(state["training_seconds"])
        self.images_seen = int(state["images_seen"])
        self.history = [EpochRecord(**record) for record in json.loads(state["history"])]
        log(f"resuming after epoch {self.epoch} (best validation AUC {self.best_auc:.4f})")

    def train_epoch(
        self,
        training_set: FaceCrops,
        validation_crops: torch.Tensor,
        validation_labels: torch.Tensor,
        progress: bool,
    ) -> EpochRecord:
        self.epoch += 1
        started = time.perf_counter()
        training_set.epoch = self.epoch
        loader = DataLoader(
            training_set,
            batch_size=self.config.batch_size,
            shuffle=True,
            drop_last=len(training_set) > self.config.batch_size,
            # One helper process augments the next batches while the cores run the model.
            num_workers=1,
            generator=torch.Generator().manual_seed(self.config.seed * 1000 + self.epoch),
        )
        self.model.train()
        total_loss, seen = 0.0, 0
        bar = tqdm(
            loader,
            desc=f"epoch {self.epoch}/{self.config.epochs}",
            unit="batch",
            disable=not progress,
            mininterval=2.0,
        )
        for crops, labels in bar:
            batch = self._model_input(crops)
            targets = labels.to(self.device)
            with torch.autocast(self.device.type, dtype=self.amp_dtype):
                logits = self.model(batch).reshape(-1)
            loss = F.binary_cross_entropy_with_logits(logits.float(), targets)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            total_loss += loss.item() * len(labels)
            seen += len(labels)
            bar.set_postfix(
                loss=f"{total_loss / seen:.4f}", val_auc=_shown(self._last_auc()), refresh=False
            )
        train_seconds = time.perf_counter() - started
        logits = self._validation_logits(validation_crops)
        auc = evaluation.roc_auc(logits.numpy(), validation_labels.numpy())
        validation_loss = float(F.binary_cross_entropy_with_logits(logits, validation_labels))
        bar.set_postfix(loss=f"{total_loss / max(seen, 1):.4f}", val_auc=_shown(auc))
        bar.close()
        record = EpochRecord(
            epoch=self.epoch,
            train_loss=total_loss / max(seen, 1),
            validation_auc=auc,
            validation_loss=validation_loss,
            learning_rate=float(self.scheduler.get_last_lr()[0]),
            seconds=time.perf_counter() - started,
            images_per_second=seen / train_seconds if train_seconds else 0.0,
        )
        self.history.append(record)
        self.training_seconds += record.seconds
        self.images_seen += seen
        score = -math.inf if auc is None else auc
        if score > self.best_auc or self.best_epoch == 0:
            self.best_auc, self.best_epoch, self.stale_epochs = score, self.epoch, 0
            best = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
            write_atomically(self.best_path, lambda handle: torch.save(best, handle))
        else:
            self.stale_epochs += 1
        self._save_state()
        return record

    def _last_auc(self) -> float | None:
        return self.history[-1].validation_auc if self.history else None

    def _model_input(self, crops: torch.Tensor) -> torch.Tensor:
        batch = model_input(crops.to(self.device), input_size=self.config.input_size)
        return batch.contiguous(memory_format=torch.channels_last)

    def _validation_logits(self, crops: torch.Tensor) -> torch.Tensor:
        self.model.eval()
        outputs = []
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=self.amp_dtype):
            for start in range(0, len(crops), _VALIDATION_BATCH):
                batch = self._model_input(crops[start : start + _VALIDATION_BATCH])
                outputs.append(self.model(batch).reshape(-1).float().cpu())
        return torch.cat(outputs)

    def _save_state(self) -> None:
        state = {
            "model_state_dict": self.model.state_dict(),
            "optimizer_state_dict": self.optimizer.state_dict(),
            "scheduler_state_dict": self.scheduler.state_dict(),
            "scaler_state_dict": self.scaler.state_dict(),
            "epoch": self.epoch,
            "best_auc": self.best_auc,
            "best_epoch": self.best_epoch,
            "stale_epochs": self.stale_epochs,
            "training_seconds": self.training_seconds,
            "images_seen": self.images_seen,
            # JSON text: weights_only loading accepts strings but not dataclasses.
            "history": json.dumps([asdict(record) for record in self.history]),
            "signature": self.config.resume_signature(),
        }
        write_atomically(self.state_path, lambda handle: torch.save(state, handle))


def _service_logits(
    state_dict: dict[str, torch.Tensor], crops: torch.Tensor, input_size: int, device: torch.device
) -> np.ndarray:
    """Logits of the weights as the pipeline will run them (float32, folded batch norm)."""
    scorer = FaceClassifier(
        {
            key: value.float() if value.is_floating_point() else value
            for key, value in state_dict.items()
        },
        input_size=input_size,
        temperature=1.0,
        device=device,
    )
    return np.concatenate(
        [
            scorer.classify(crops[start : start + _VALIDATION_BATCH]).logits
            for start in range(0, len(crops), _VALIDATION_BATCH)
        ]
    ).astype(np.float64)


# --- calibration, thresholds, card --------------------------------------------------------


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T that minimises the validation NLL of sigmoid(logit / T) (LBFGS on log T)."""
    logit_tensor = torch.as_tensor(logits, dtype=torch.float64)
    label_tensor = torch.as_tensor(labels, dtype=torch.float64)
    log_temperature = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [log_temperature], lr=0.5, max_iter=200, line_search_fn="strong_wolfe"
    )

    def negative_log_likelihood() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.binary_cross_entropy_with_logits(
            logit_tensor / log_temperature.exp(), label_tensor
        )
        loss.backward()
        return loss

    optimizer.step(negative_log_likelihood)
    return float(log_temperature.detach().exp())


def calibrated(logits: np.ndarray, temperature: float) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-logits / temperature)), dtype=np.float64)


def choose_thresholds(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """`flag` flags at most 1 % of validation real faces, `uncertain` at most 5 %."""
    flag_fpr, uncertain_fpr = evaluation.REPORTED_FPRS
    # A real face scored exactly 1.0 would push the cut past 1; the card allows at most 1.
    flag = min(1.0, evaluation.threshold_at_fpr(probabilities, labels, flag_fpr))
    uncertain = min(flag, evaluation.threshold_at_fpr(probabilities, labels, uncertain_fpr))
    return {"flag": flag, "uncertain": uncertain}


def write_trained_checkpoint(
    path: Path,
    state_dict: dict[str, torch.Tensor],
    card: dict[str, Any],
    *,
    epoch: int,
    validation_loss: float,
) -> None:
    """The published layout (weights plus training state keys) and its card, both atomic."""
    payload = {
        "model_state_dict": state_dict,
        "epoch": epoch,
        # Left empty: AdamW's moments would triple the file and serve nobody at run time.
        "optimizer_state_dict": {},
        "validation_loss": validation_loss,
    }
    write_atomically(path, lambda handle: torch.save(payload, handle))
    card_text = json.dumps(card, indent=2, sort_keys=True) + "\n"
    write_atomically(model_card_path(path), lambda handle: handle.write(card_text.encode()))


def _finish(
    config: TrainingConfig,
    run: _Run,
    shipped: dict[str, torch.Tensor],
    logits: np.ndarray,
    labels: np.ndarray,
    *,
    counts: dict[str, int],
    seconds: dict[str, float],
) -> dict[str, Any]:
    temperature = fit_temperature(logits, labels)
    probabilities = calibrated(logits, temperature)
    thresholds = choose_thresholds(probabilities, labels)
    validation = evaluation.metrics(probabilities, labels, threshold=thresholds["flag"])
    uncalibrated = calibrated(logits, 1.0)
    validation_loss = float(
        F.binary_cross_entropy_with_logits(
            torch.as_tensor(logits / temperature), torch.as_tensor(labels)
        )
    )
    evaluation.plot_roc(
        {"DFDC validation": (probabilities, labels)},
        evaluation.plot_path(config.output, "roc"),
        title=f"{config.output.stem}: ROC on DFDC validation",
    )
    evaluation.plot_reliability(
        probabilities,
        labels,
        evaluation.plot_path(config.output, "reliability"),
        title="calibrated, DFDC validation",
    )
    best = next(record for record in run.history if record.epoch == run.best_epoch)
    card = {
        "name": config.output.stem,
        "trained": True,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "architecture": (
            "InceptionResnetV1 (facenet-pytorch), classify=True, one logit; trained from "
            "random initialisation (no pretrained face weights are reachable offline)"
        ),
        "input_size": config.input_size,
        "training_data": {
            "dataset": (
                "DFDC face crops: one 224x224 face per video from the DeepFake Detection "
                "Challenge training set, half real and half fake, each fake from a different "
                "source video"
            ),
            "licence": LICENCE,
            "location": str(config.data_dir),
            **counts,
            "split": (
                f"by source video (group), seeded ({config.seed}): "
                f"{1 - config.val_fraction:.0%} / {config.val_fraction:.0%}; no video and no "
                "fake of it is on both sides"
            ),
            "preparation": (
                f"each crop padded {PAD_FRACTION:.0%} per side by reflection, then the "
                "service's MTCNN detector and cropper (160x160); when MTCNN found no face the "
                "crop was resized whole"
            ),
            "augmentation": (
                "horizontal flip, brightness/contrast/saturation jitter, down-and-up "
                "rescaling, gaussian blur, JPEG re-compression (quality 35-95), on the 0-255 "
                "crop before the model's resize"
            ),
        },
        "metrics": {
            "validation": validation.as_dict(),
            "validation_before_calibration": {
                "ece": round(evaluation.expected_calibration_error(uncalibrated, labels), 6),
                "brier": round(evaluation.brier_score(uncalibrated, labels), 6),
            },
            "note": (
                "measured on the DFDC validation split with the shipped fp16 weights through "
                "the service's scorer; accuracy is at the flag threshold; thresholds were "
                "chosen on the same split, so other sources will not reproduce 1 % / 5 % FPR"
            ),
        },
        "thresholds": thresholds,
        "threshold_selection": (
            "flag: lowest calibrated P(fake) that flags at most 1 % of validation real faces; "
            "uncertain: the same at 5 %"
        ),
        "calibration": {
            "temperature": temperature,
            "method": "temperature scaling fitted by LBFGS on validation negative log-likelihood",
        },
        "training": {
            "epochs": config.epochs,
            "epochs_run": run.epoch,
            "best_epoch": run.best_epoch,
            "best_epoch_validation_auc_bf16": best.validation_auc,
            "batch_size": config.batch_size,
            "optimizer": f"AdamW, weight decay {config.weight_decay}",
            "schedule": f"OneCycle, peak learning rate {config.learning_rate}",
            "loss": "binary cross-entropy with logits (real 0, fake 1)",
            "precision": f"{str(run.amp_dtype).removeprefix('torch.')} autocast on {run.device}",
            "early_stopping": f"patience {config.patience} epochs on validation AUC",
            "images_per_second": round(run.images_seen / max(run.training_seconds, 1e-9), 1),
            "preparation_seconds": round(seconds["preparation"], 1),
            "training_seconds": round(run.training_seconds, 1),
            "wall_time_seconds": round(seconds["total"], 1),
            "command": config.command,
            "history": [asdict(record) for record in run.history],
        },
        "limitations": [
            "It has only seen DFDC: face swaps made in 2019-2020 of paid actors filmed for the "
            "challenge. Newer methods (diffusion or GAN generated faces, lip-sync, expression "
            "transfer) and other sources may pass as real.",
            "It was trained from scratch for a few epochs on a CPU, with no pretrained face "
            "features; it is far weaker than state-of-the-art detectors.",
            "It judges one still face crop at a time; it cannot use motion, audio or several "
            "frames of a video.",
            "Small faces (under about 60 pixels), faces in profile, covered, heavily filtered "
            "or many times re-compressed faces make its scores unreliable.",
            "The thresholds and the calibration were fitted on DFDC validation faces: on "
            "photos of another kind the share of real faces flagged can be much higher than 1 %.",
            "A score is an estimate for human review, never proof that a photo was manipulated.",
            "Research licence: DFDC data may be used for non-commercial research only.",
        ],
    }
    write_trained_checkpoint(
        config.output,
        shipped,
        card,
        epoch=run.best_epoch,
        validation_loss=validation_loss,
    )
    # Read back through the service's loader: a card the service rejects fails here, not later.
    load_checkpoint(config.output)
    return card


def _shown(auc: float | None) -> str:
    return "-" if auc is None else f"{auc:.4f}"
