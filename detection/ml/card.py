"""The model card: what a checkpoint is, how it was measured and what it cannot do.

A card is one JSON file beside its checkpoint (`<stem>.json`), with the checkpoint's plots
(`<stem>.<kind>.png`). This module is the only place that reads, validates or writes it.
It imports no torch, so the web process can show a card without loading the model.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard, TypeVar

from detection.ml.storage import write_atomically

if TYPE_CHECKING:
    import numpy as np
    import torch

    Logits = TypeVar("Logits", np.ndarray, torch.Tensor)

# Bump when the JSON layout changes; `from_dict` upgrades older layouts it knows.
CARD_FORMAT = 2
# The published checkpoint's input size; cards that say nothing mean this.
DEFAULT_INPUT_SIZE = 256
# Below this the network's last feature map vanishes.
MIN_INPUT_SIZE = 75
# The most of a face box's height a model may leave out at the top (`crop_top_cut`): half
# the box would cut into the eyes.
MAX_CROP_TOP_CUT = 0.5
# The networks a checkpoint's weights can be for (built by `classifier.new_classifier`):
# facenet-pytorch's InceptionResnetV1, and dlib's face recognition ResNet with a real/fake
# logit (`detection.ml.face_resnet`).
INCEPTION_RESNET_V1 = "inception_resnet_v1"
FACE_RESNET = "face_resnet"
NETWORKS = (INCEPTION_RESNET_V1, FACE_RESNET)
# Below this ROC AUC outside the training data, every score carries the card's caution.
WEAK_AUC = 0.8
# The plots stored beside a checkpoint, which the model card page serves.
PLOT_KINDS = ("roc", "reliability", "training")


class CardError(ValueError):
    """The model card is unreadable or says something impossible."""


@dataclass(frozen=True)
class Thresholds:
    flag: float  # P(fake) at or above this → 'fake'
    uncertain: float  # P(fake) at or above this (and below flag) → 'uncertain'
    selection: str = ""  # how they were chosen, and on which faces


@dataclass(frozen=True)
class Calibration:
    """P(fake) = sigmoid(logit / temperature + bias), Platt scaling.

    The bias moves the scores of a model whose training saw the classes in another balance
    than its validation faces have (self-blends are easy fakes; DFDC's are not): a
    temperature alone can sharpen or soften scores but not move them. Older cards have none.
    """

    temperature: float = 1.0
    method: str = ""
    bias: float = 0.0

    def logits(self, raw: Logits) -> Logits:
        """Calibrated logits of the network's own (a NumPy array or a tensor)."""
        return raw / self.temperature + self.bias


@dataclass(frozen=True)
class GroupVerdicts:
    """How the model judged one group of a set of real photos, e.g. people aged 65 and over.

    Thresholds hold their false-positive budget over a whole set; this shows whether they hold
    it for everyone in it, or flag some people's photos more often than others'.
    """

    attribute: str  # what the groups are formed by: "age", "gender", "ethnicity"
    group: str  # e.g. "65 and over"
    count: int
    judged_fake: int  # photos at or above the `fake` threshold
    judged_uncertain: int  # photos at or above the `uncertain` threshold ("uncertain" or worse)
    mean_probability: float  # mean calibrated P(fake)

    @property
    def fake_share(self) -> float:
        return self.judged_fake / self.count

    @property
    def uncertain_share(self) -> float:
        return self.judged_uncertain / self.count


@dataclass(frozen=True)
class Evaluation:
    """One named measurement of the model, e.g. on a validation split or a test set."""

    title: str
    metrics: dict[str, Any]  # auc, tpr_at_1_fpr, ece, ... (see workbench.evaluation)
    note: str = ""  # how it was measured (command, set, what was left out)
    # False when the set differs in kind from the training data: its numbers then say how
    # the model does on data it never saw, which the pages warn about.
    in_domain: bool = True
    # The same measurement broken down by who the faces show (sets of real photos only).
    by_group: list[GroupVerdicts] = field(default_factory=list)


@dataclass(frozen=True)
class ModelCard:
    name: str
    trained: bool
    network: str = INCEPTION_RESNET_V1  # one of NETWORKS; cards that say nothing mean the first
    input_size: int = DEFAULT_INPUT_SIZE
    # The share of MTCNN's box height the model's crop leaves out at the top (see
    # `detection.ml.faces.model_box`); 0 for models trained on the whole box.
    crop_top_cut: float = 0.0
    created: str = ""
    architecture: str = ""
    source: str = ""  # where the weights came from, when not trained here
    training_data: dict[str, Any] = field(default_factory=dict)
    thresholds: Thresholds | None = None
    calibration: Calibration = field(default_factory=Calibration)
    # Score each face as the mean logit of the face and its mirror image (chosen in training
    # when it improved the held-out checks).
    mirror_average: bool = False
    evaluations: dict[str, Evaluation] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    # Plain sentences for moderators: what the model catches, and what it misses.
    summary: list[str] = field(default_factory=list)
    limitations: list[str] = field(default_factory=list)

    def caution(self) -> str | None:
        """A short warning to show beside every score when the card's own measurements on
        data unlike the training data are weak; None when they are not (or there are none)."""
        weak = [
            (float(evaluation.metrics["auc"]), evaluation.title)
            for evaluation in self.evaluations.values()
            if not evaluation.in_domain
            and _is_number(evaluation.metrics.get("auc"))
            and evaluation.metrics["auc"] < WEAK_AUC
        ]
        if not weak:
            return None
        measured = "; ".join(f"AUC {auc:.2f} on {title}" for auc, title in sorted(weak)[:2])
        return (
            f"Weak on data unlike its training data ({measured}; 0.5 is chance): "
            "treat the score as a reason to look, not as a finding."
        )

    def with_evaluation(self, key: str, evaluation: Evaluation) -> ModelCard:
        return replace(self, evaluations={**self.evaluations, key: evaluation})

    def to_dict(self) -> dict[str, Any]:
        return {"format": CARD_FORMAT, **asdict(self)}

    @classmethod
    def from_dict(cls, data: object, *, where: str = "model card") -> ModelCard:
        """Validate a card's JSON object; CardError names the first problem found."""
        if not isinstance(data, dict):
            raise CardError(f"{where} must hold a JSON object")
        data = _upgraded(dict(data), where)
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise CardError(f"{where}: name must be a non-empty string")
        trained = data.get("trained", False)
        if not isinstance(trained, bool):
            raise CardError(f"{where}: trained must be true or false")
        network = data.get("network", INCEPTION_RESNET_V1)
        if network not in NETWORKS:
            raise CardError(f"{where}: network must be one of {', '.join(NETWORKS)}")
        input_size = data.get("input_size", DEFAULT_INPUT_SIZE)
        if not _is_integer(input_size) or input_size < MIN_INPUT_SIZE:
            raise CardError(f"{where}: input_size must be an integer >= {MIN_INPUT_SIZE}")
        crop_top_cut = data.get("crop_top_cut", 0.0)
        if not is_crop_top_cut(crop_top_cut):
            raise CardError(
                f"{where}: crop_top_cut must be a number from 0 to below {MAX_CROP_TOP_CUT}"
            )
        return cls(
            name=name,
            trained=trained,
            network=network,
            input_size=input_size,
            crop_top_cut=float(crop_top_cut),
            created=_text(data, "created", where),
            architecture=_text(data, "architecture", where),
            source=_text(data, "source", where),
            training_data=_object(data, "training_data", where),
            thresholds=_thresholds(data.get("thresholds"), where),
            calibration=_calibration(data.get("calibration"), where),
            mirror_average=_flag(data, "mirror_average", where),
            evaluations=_evaluations(data.get("evaluations"), where),
            training=_object(data, "training", where),
            summary=_sentences(data, "summary", where),
            limitations=_sentences(data, "limitations", where),
        )


def card_path(checkpoint: Path) -> Path:
    return Path(checkpoint).with_suffix(".json")


def plot_path(checkpoint: Path, kind: str) -> Path:
    """Where a checkpoint's plot of `kind` is stored: beside it."""
    if kind not in PLOT_KINDS:
        raise ValueError(f"unknown plot {kind!r}")
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(f"{checkpoint.stem}.{kind}.png")


def read_card(checkpoint: Path) -> ModelCard | None:
    """The card beside `checkpoint`, or None when it has none; CardError when it is bad."""
    path = card_path(checkpoint)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CardError(f"model card {path.name} is not readable JSON: {exc}") from exc
    return ModelCard.from_dict(data, where=f"model card {path.name}")


def write_card(checkpoint: Path, card: ModelCard) -> Path:
    """Replace the card beside `checkpoint` atomically (readers see the old or the new one)."""
    path = card_path(checkpoint)
    # Round-trip through the validator: a card the service would reject is never written.
    ModelCard.from_dict(card.to_dict(), where=f"model card {path.name}")
    text = json.dumps(card.to_dict(), indent=2, sort_keys=True) + "\n"
    write_atomically(path, lambda handle: handle.write(text.encode()))
    return path


def remove_card(checkpoint: Path) -> None:
    """A card left from a previous model would describe the wrong weights."""
    card_path(checkpoint).unlink(missing_ok=True)


def checkpoint_version(checkpoint: Path) -> str:
    """The checkpoint's short hash: the first 12 hex digits of its file's sha256."""
    return checkpoint_sha256(checkpoint)[:12]


def checkpoint_sha256(checkpoint: Path) -> str:
    """The sha256 of the checkpoint file, in hex (evidence names the exact weights)."""
    stat = Path(checkpoint).stat()
    return _file_sha256(str(checkpoint), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _file_sha256(path: str, _mtime_ns: int, _size: int) -> str:
    # Cached per file state so that a page view does not hash 47 MB every time.
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- validation ---------------------------------------------------------------------------


def _upgraded(data: dict[str, Any], where: str) -> dict[str, Any]:
    """Format 1 (no `format` key) kept measurements and their notes side by side in
    `metrics` and the threshold selection at the top level."""
    version = data.pop("format", 1)
    if version == CARD_FORMAT:
        return data
    if version != 1:
        raise CardError(f"{where}: format {version!r} is newer than this version understands")
    metrics = data.pop("metrics", None) or {}
    # "note" described every set; "<set>_note" one set.
    notes = {
        key.removesuffix("note").removesuffix("_"): value
        for key, value in metrics.items()
        if key.endswith("note")
    }
    data["evaluations"] = {
        key: {
            "title": key.replace("_", " ").capitalize(),
            "metrics": value,
            "note": str(notes.get(key) or notes.get("") or ""),
        }
        for key, value in metrics.items()
        if isinstance(value, dict)
    }
    if isinstance(data.get("thresholds"), dict) and "threshold_selection" in data:
        data["thresholds"] = {**data["thresholds"], "selection": data["threshold_selection"]}
    data.pop("threshold_selection", None)
    if isinstance(data.get("training_data"), str):
        data["training_data"] = {"dataset": data["training_data"]}
    return data


def _thresholds(value: object, where: str) -> Thresholds | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not {"flag", "uncertain"} <= set(value):
        raise CardError(f"{where}: thresholds needs 'flag' and 'uncertain'")
    flag, uncertain = value["flag"], value["uncertain"]
    if not (_is_number(flag) and _is_number(uncertain) and 0 <= uncertain <= flag <= 1):
        raise CardError(f"{where}: thresholds must satisfy 0 <= uncertain <= flag <= 1")
    return Thresholds(float(flag), float(uncertain), str(value.get("selection") or ""))


def _calibration(value: object, where: str) -> Calibration:
    if value is None:
        return Calibration()
    temperature = value.get("temperature") if isinstance(value, dict) else None
    if not isinstance(value, dict) or not _is_number(temperature) or not temperature > 0:
        raise CardError(f"{where}: calibration.temperature must be > 0")
    bias = value.get("bias", 0.0)
    if not _is_number(bias):
        raise CardError(f"{where}: calibration.bias must be a number")
    return Calibration(float(temperature), str(value.get("method") or ""), float(bias))


def _evaluations(value: object, where: str) -> dict[str, Evaluation]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CardError(f"{where}: evaluations must be an object")
    found = {}
    for key, entry in value.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("metrics"), dict):
            raise CardError(f"{where}: evaluation {key!r} needs an object of metrics")
        found[str(key)] = Evaluation(
            title=str(entry.get("title") or key),
            metrics=entry["metrics"],
            note=str(entry.get("note") or ""),
            in_domain=bool(entry.get("in_domain", True)),
            by_group=_group_verdicts(entry.get("by_group"), f"{where}: evaluation {key!r}"),
        )
    return found


def _group_verdicts(value: object, where: str) -> list[GroupVerdicts]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise CardError(f"{where}: by_group must be a list")
    found = []
    for entry in value:
        if not isinstance(entry, dict):
            raise CardError(f"{where}: each of by_group must be an object")
        attribute, group = entry.get("attribute"), entry.get("group")
        count, fake, uncertain = (
            entry.get(k) for k in ("count", "judged_fake", "judged_uncertain")
        )
        mean = entry.get("mean_probability")
        if not (isinstance(attribute, str) and attribute and isinstance(group, str) and group):
            raise CardError(f"{where}: each group needs an attribute and a name")
        if not (
            _is_integer(count)
            and _is_integer(fake)
            and _is_integer(uncertain)
            and 0 <= fake <= uncertain <= count
            and count > 0
        ):
            raise CardError(
                f"{where}: group {group!r} needs 0 <= judged_fake <= judged_uncertain <= count "
                "and count > 0"
            )
        if not (_is_number(mean) and 0 <= mean <= 1):
            raise CardError(f"{where}: group {group!r}: mean_probability must be in [0, 1]")
        found.append(GroupVerdicts(attribute, group, count, fake, uncertain, float(mean)))
    return found


def _object(data: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = data.get(key) or {}
    if not isinstance(value, dict):
        raise CardError(f"{where}: {key} must be an object")
    return value


def _text(data: dict[str, Any], key: str, where: str) -> str:
    value = data.get(key) or ""
    if not isinstance(value, str):
        raise CardError(f"{where}: {key} must be a string")
    return value


def _sentences(data: dict[str, Any], key: str, where: str) -> list[str]:
    value = data.get(key) or []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise CardError(f"{where}: {key} must be a list of strings")
    return list(value)


def _flag(data: dict[str, Any], key: str, where: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise CardError(f"{where}: {key} must be true or false")
    return value


def is_crop_top_cut(value: object) -> TypeGuard[int | float]:
    """A share of the face box a model may leave out at the top: 0 to below MAX_CROP_TOP_CUT."""
    return _is_number(value) and 0 <= value < MAX_CROP_TOP_CUT


def _is_integer(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[int | float]:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )
