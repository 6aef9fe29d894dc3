"""Install the published classifier checkpoint from the Hugging Face hub."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from huggingface_hub import hf_hub_download

from detection.management.checkpoint_output import checkpoint_output

# What is known about the published weights (DESIGN §4), written beside them as the model
# card so that pages and API responses can say what is running.
PUBLISHED_MODEL_CARD: dict[str, Any] = {
    "name": "aaronespasa/deepfake-detection-resnetinceptionv1 epoch 32",
    "trained": True,
    "training_data": (
        "FaceForensics++ DeepFakeDetection (c23) face crops; labels real = 0, fake = 1"
    ),
    "metrics": {
        "validation_accuracy": 0.967,
        "note": "reported by the authors on a split that shares videos with training",
    },
    "input_size": 256,
}


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
        from detection.ml.classifier import CheckpointError, model_card_path, verify_checkpoint
        from detection.ml.storage import write_atomically

        output = checkpoint_output(options["output"])
        source: Path = options["source"] or self._download()
        try:
            loaded = verify_checkpoint(source)
        except CheckpointError as exc:
            raise CommandError(f"refusing to install: {exc}") from exc

        with source.open("rb") as checkpoint:
            write_atomically(output, lambda handle: shutil.copyfileobj(checkpoint, handle))
        if options["source"]:
            card = loaded.card or None
        else:
            card = {**PUBLISHED_MODEL_CARD, "source": self._hub_reference()}
        card_path = model_card_path(output)
        if card:
            text = json.dumps(card, indent=2, sort_keys=True) + "\n"
            write_atomically(card_path, lambda handle: handle.write(text.encode()))
        else:
            # A card left from the previous model would describe the wrong weights.
            card_path.unlink(missing_ok=True)
        self.stdout.write(
            self.style.SUCCESS(f"installed {output} (version {loaded.version}, verified)")
        )

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
