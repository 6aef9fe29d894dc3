"""A short training run on a lent accelerator machine, from a pack of faces (`packed.py`).

There, with no Django and none of the shared data, from the repository root:

    python3 -m workbench.training.accelerated --pack var/gpu-pack --out "$OUT" --minutes 7

- the pack is decoded into memory once; every core but one blends and augments faces with
  the CPU run's own code, while the GPU trains in bf16 autocast, channels-last;
- the run lasts `--minutes`, and its schedule is planned from measured speed: a probe at the
  start of the warm-up times the steps, and the cosine decay is set to end as the time does;
- the EMA of the weights (batch-norm statistics measured anew at the end) is written to
  `--out` in fp16 pieces under 16 MiB (what a device call can return), every few minutes and
  at the end, with `run.json`: a run cut short still returns its weights.

Back here, `accelerated_training import` joins the pieces into a checkpoint to fine-tune at
the serving size and calibrate with `train_detector`.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import itertools
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from detection.ml.storage import write_atomically
from workbench.training.data import TrainingError
from workbench.training.packed import read_pack
from workbench.training.run import (
    BN_CALIBRATION_BATCHES,
    REAL,
    CalibrationCrops,
    Run,
    RunConfig,
    Schedule,
    TrainingFaces,
    balanced_positive_weight,
    compute_dtype,
    epoch_batches,
)

PIECE_BYTES = 15 * 2**20  # a device call returns files of at most 16 MiB
MANIFEST = "run.json"
# The share of the budget kept for the end: batch-norm statistics, the last pieces.
FINISH_SHARE = 0.1


@dataclass(frozen=True)
class Budget:
    started: float
    seconds: float

    def left(self) -> float:
        return self.seconds - (time.monotonic() - self.started)


class _AnyEpoch(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Index epoch x N + position → that position's face as epoch `epoch` makes it, so one
    loader (its processes started once) can serve every epoch of the run."""

    def __init__(self, faces: TrainingFaces) -> None:
        self.faces = faces

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, position = divmod(index, len(self.faces))
        return self.faces.item(position, epoch)


class _EndlessBatches(Sampler[list[int]]):
    def __init__(self, units: list[list[tuple[int, int]]], batch_size: int, seed: int) -> None:
        self.units, self.batch_size, self.seed = units, batch_size, seed
        self.images = sum(len(unit) for unit in units)

    def __iter__(self) -> Iterator[list[int]]:
        for epoch in itertools.count(1):
            for batch in epoch_batches(
                self.units, batch_size=self.batch_size, seed=self.seed, epoch=epoch
            ):
                yield [epoch * self.images + position for position in batch]


def write_pieces(state_dict: dict[str, torch.Tensor], folder: Path, record: dict[str, Any]) -> None:
    """The weights in fp16, cut into pieces under PIECE_BYTES, and the manifest last."""
    half = {
        name: tensor.detach().cpu().half() if tensor.is_floating_point() else tensor.cpu()
        for name, tensor in state_dict.items()
    }
    buffer = io.BytesIO()
    torch.save(half, buffer)
    payload = buffer.getvalue()
    pieces = []
    for number, start in enumerate(range(0, len(payload), PIECE_BYTES)):
        name = f"weights.part{number}"
        piece = payload[start : start + PIECE_BYTES]
        _write(folder / name, piece)
        pieces.append(name)
    manifest = {**record, "pieces": pieces, "sha256": hashlib.sha256(payload).hexdigest()}
    _write(folder / MANIFEST, json.dumps(manifest, indent=1).encode())


def _write(path: Path, content: bytes) -> None:
    write_atomically(path, lambda handle: handle.write(content))


def join_pieces(folder: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The weights (float32) and the manifest of a device run's pieces, checked whole."""
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise TrainingError(f"no {MANIFEST} in {folder}: is it a device run's output?")
    manifest = json.loads(manifest_path.read_text())
    missing = [name for name in manifest["pieces"] if not (folder / name).is_file()]
    if missing:
        raise TrainingError(f"{folder} lacks the pieces {', '.join(missing)}")
    payload = b"".join((folder / name).read_bytes() for name in manifest["pieces"])
    if hashlib.sha256(payload).hexdigest() != manifest["sha256"]:
        raise TrainingError(f"the pieces in {folder} do not add up to the weights they list")
    half = torch.load(io.BytesIO(payload), weights_only=True)
    weights = {k: v.float() if v.is_floating_point() else v for k, v in half.items()}
    return weights, manifest


def train_on_accelerator(args: argparse.Namespace) -> None:
    budget = Budget(time.monotonic(), 60 * args.minutes)
    # Many loader processes: OpenCV's own thread pool in each would only fight over the cores.
    # Set here, before they fork: a forked child that resizes the pool it inherited waits
    # forever on the parent's threads, which it does not have.
    cv2.setNumThreads(1)
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    packed = read_pack(args.pack, threads=os.cpu_count() or 1)
    entries = [entry for unit in packed.units for entry in unit]
    fakes = sum(kind != REAL for kind, _ in entries)
    print(
        f"pack: recipe {packed.recipe}, {len(packed.cache)} faces at {packed.side} px, "
        f"{len(entries)} images an epoch ({fakes} fake), decoded in "
        f"{time.monotonic() - budget.started:.0f} s",
        flush=True,
    )
    config = RunConfig(
        workdir=args.out,
        dfdc_dir=args.pack,  # the pack stands in for both sets
        utkface_dir=args.pack,
        recipe=packed.recipe,
        input_size=args.input_size,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        ema_decay=args.ema_decay,
        seed=args.seed,
        device=args.device,
    )
    run = Run(config, device, steps_per_epoch=len(entries) // args.batch_size)
    # Warm up at a fixed pace; the decay's end is set once the probe has timed the steps.
    warmup = args.warmup_steps
    run.schedule = Schedule(warmup=warmup, total=10**9, decay_from=warmup)
    # Timed steps: after the loaders and cuDNN have warmed up, well before the warm-up ends.
    probe = (max(1, warmup // 10), max(2, warmup // 2))
    faces = TrainingFaces(packed.cache, entries, seed=args.seed, top_cut=config.crop_top_cut)
    positive_weight = balanced_positive_weight(entries)
    record: dict[str, Any] = {
        "recipe": packed.recipe,
        "pack_side": packed.side,
        "input_size": args.input_size,
        "batch_size": args.batch_size,
        "learning_rate": args.lr,
        "ema_decay": args.ema_decay,
        "seed": args.seed,
        "images_per_epoch": len(entries),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "precision": str(compute_dtype(device)).removeprefix("torch."),
        "loss_curve": [],
    }
    planned: int | None = args.steps  # else planned from the probe's speed
    if planned is not None:
        run.schedule = Schedule(warmup=warmup, total=planned, decay_from=warmup)
        record["planned_steps"] = planned
    probe_started, last_pieces, window = 0.0, time.monotonic(), []
    train_started = time.monotonic()
    for step, (crops, labels) in enumerate(_loader(faces, packed.units, args, device), start=1):
        if step == probe[0]:
            probe_started = time.monotonic()
        window.append(run.step(crops, labels, positive_weight))
        if planned is None and step == probe[1]:
            seconds_per_step = (time.monotonic() - probe_started) / (probe[1] - probe[0])
            planned = planned_steps(
                step,
                seconds_per_step,
                budget.left() - FINISH_SHARE * budget.seconds,
                warmup=warmup,
                batch_size=args.batch_size,
            )
            run.schedule = Schedule(warmup=warmup, total=planned, decay_from=warmup)
            record["planned_steps"] = planned
            print(
                f"probe: {args.batch_size / seconds_per_step:.0f} images/s; planned "
                f"{planned} steps, {planned * args.batch_size / len(entries):.1f} epochs",
                flush=True,
            )
        if len(window) == 50:
            record["loss_curve"].append((run.progress.images_seen, float(np.mean(window))))
            window = []
            print(f"step {step}: loss {record['loss_curve'][-1][1]:.4f}", flush=True)
        if time.monotonic() - last_pieces > 60 * args.pieces_every:
            _report(run, record, train_started, final=False)
            write_pieces(run.ema.module.state_dict(), args.out, record)
            last_pieces = time.monotonic()
        if step == planned:
            break
    calibration_batches = epoch_batches(
        packed.units, batch_size=min(64, args.batch_size), seed=args.seed, epoch=0
    )[:BN_CALIBRATION_BATCHES]
    averaged = run.averaged_model(CalibrationCrops(faces, calibration_batches))
    _report(run, record, train_started, final=True)
    write_pieces(averaged.state_dict(), args.out, record)
    print(
        f"done: {record['steps']} steps, {run.progress.images_seen} images "
        f"({record['epochs']:.1f} epochs) at {record['images_per_second']:.0f} images/s; "
        f"{time.monotonic() - budget.started:.0f} s in all",
        flush=True,
    )


def planned_steps(
    done: int, seconds_per_step: float, seconds_left: float, *, warmup: int, batch_size: int
) -> int:
    """The run's steps in all, if the time left goes at the probe's pace; a budget that would
    end the run inside its warm-up is refused."""
    planned = done + int(seconds_left / seconds_per_step)
    if planned <= warmup:
        raise TrainingError(
            f"{seconds_left:.0f} s left give {planned} steps at "
            f"{batch_size / seconds_per_step:.0f} images/s, not past the {warmup}-step warm-up: "
            "give the run more --minutes"
        )
    return planned


def _loader(
    faces: TrainingFaces,
    units: list[list[tuple[int, int]]],
    args: argparse.Namespace,
    device: torch.device,
) -> DataLoader[tuple[torch.Tensor, torch.Tensor]]:
    return DataLoader(
        _AnyEpoch(faces),
        batch_sampler=_EndlessBatches(units, args.batch_size, args.seed),
        num_workers=args.workers,
        prefetch_factor=6,
        pin_memory=device.type == "cuda",
        multiprocessing_context="fork",
    )


def _report(run: Run, record: dict[str, Any], started: float, *, final: bool) -> None:
    seconds = time.monotonic() - started
    record.update(
        steps=run.progress.images_seen // record["batch_size"],
        images_seen=run.progress.images_seen,
        training_seconds=round(seconds, 1),
        images_per_second=run.progress.images_seen / max(seconds, 1e-9),
        epochs=run.progress.images_seen / record["images_per_epoch"],
        final=final,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--pack", type=Path, required=True, help="a folder holding faces.npz")
    parser.add_argument("--out", type=Path, required=True, help="where the pieces go")
    parser.add_argument("--minutes", type=float, default=7.0, help="the whole run's budget")
    parser.add_argument("--input-size", type=int, default=160)
    parser.add_argument("--batch-size", type=int, default=256)
    # A CPU run's 1e-3 at 64 faces a step, scaled by the square root of the larger batch.
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    parser.add_argument("--ema-decay", type=float, default=0.999)
    parser.add_argument("--warmup-steps", type=int, default=300)
    parser.add_argument(
        "--steps", type=int, help="a fixed length instead of one planned from --minutes"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--pieces-every", type=float, default=2.0, metavar="MINUTES")
    args = parser.parse_args(argv)
    if args.steps is not None and args.steps <= args.warmup_steps:
        parser.error("--steps must be more than --warmup-steps")
    train_on_accelerator(args)


if __name__ == "__main__":
    main()
