"""Install the published classifier checkpoint from the Hugging Face hub."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from huggingface_hub import hf_hub_download

from detection.management.checkpoint_output import checkpoint_output
from detection.ml.card import Evaluation, ModelCard

# What is known about the published weights, written beside them as their model card so
# that pages and API responses can say what is running.
PUBLISHED_MODEL_CARD = ModelCard(
    name="aaronespasa/deepfake-detection-resnetinceptionv1 epoch 32",
    trained=True,
    input_size=256,
    training_data={
        "dataset": "FaceForensics++ DeepFakeDetection (c23) face crops; labels real = 0, fake = 1"
    },
    evaluations={
        "reported": Evaluation(
            title="Reported by the authors",
            metrics={"accuracy": 0.967},
            note="validation accuracy on a split that shares videos with training",
        )
    },
)


class Command(BaseCommand):
    help = (
        "Download the published checkpoint (settings DEEPFAKE_HF_REPO / DEEPFAKE_HF_FILENAME) "
        "from the Hugging Face hub, verify it, and install it at settings.DEEPFAKE_CHECKPOINT."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--source",
            type=Path,
            help="install this local checkpoint file instead of downloading (offline machines)",
        )
        parser.add_argument(
            "--output",
            type=Path,
            help="default: settings.DEEPFAKE_CHECKPOINT unless that is the shipped model",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from detection.ml.classifier import CheckpointError, save_checkpoint, verify_checkpoint

        output = checkpoint_output(options["output"])
        source: Path = options["source"] or self._download()
        try:
            loaded = verify_checkpoint(source)
        except CheckpointError as exc:
            raise CommandError(f"refusing to install: {exc}") from exc
        if options["source"]:
            card = loaded.card
        else:
            card = dataclasses.replace(PUBLISHED_MODEL_CARD, source=self._hub_reference())
        # Written anew in the service's own layout (weights only, no optimiser state); a
        # source without a card leaves none, as an old card would describe other weights.
        save_checkpoint(output, loaded.state_dict, card)
        version = verify_checkpoint(output).version
        self.stdout.write(self.style.SUCCESS(f"installed {output} (version {version}, verified)"))

    def _download(self) -> Path:
        repo, filename = settings.DEEPFAKE_HF_REPO, settings.DEEPFAKE_HF_FILENAME
        self.stdout.write(f"downloading {self._hub_reference()} ...")
        try:
            return Path(hf_hub_download(repo_id=repo, filename=filename))
        except Exception as exc:
            # The hub client raises a family of connection, HTTP and cache errors; for the
            # operator they all mean the same thing and have the same remedy.
            raise CommandError(
                f"could not download {filename} from the Hugging Face hub repository {repo} "
                f"(offline, or the hub is unreachable?): {exc}. On a machine without internet "
                "access, copy the file over and run `manage.py fetch_model --source FILE`."
            ) from exc

    def _hub_reference(self) -> str:
        return f"{settings.DEEPFAKE_HF_FILENAME} of {settings.DEEPFAKE_HF_REPO} (Hugging Face hub)"
