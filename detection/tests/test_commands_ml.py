"""The serving side's ML commands: analyze and fetch_model."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from django.core.management import call_command
from django.core.management.base import CommandError

from detection.management.commands import fetch_model
from detection.ml.card import read_card
from detection.ml.classifier import load_checkpoint


def _run(*args: str, **options: Any) -> str:
    stdout = io.StringIO()
    call_command(*args, stdout=stdout, stderr=io.StringIO(), **options)
    return stdout.getvalue()


def test_analyze_json_lists_every_face_with_its_heatmap(
    demo_checkpoint: Path, samples_dir: Path, tmp_path: Path
) -> None:
    output = _run(
        "analyze",
        str(samples_dir / "fake_frame_0.jpg"),
        checkpoint=demo_checkpoint,
        json=True,
        heatmaps=tmp_path / "heatmaps",
    )
    (line,) = output.splitlines()
    record = json.loads(line)
    assert record["status"] == "ok"
    assert record["verdict"] in {"fake", "uncertain", "real"}
    assert record["model_trained"] is False
    assert len(record["model_version"]) == 12
    assert {"decode", "detect", "classify", "explain", "render", "total"} <= set(
        record["timings_ms"]
    )
    assert len(record["faces"]) == 2
    for face in record["faces"]:
        x1, y1, x2, y2 = face["box"]
        assert 0 <= x1 < x2 <= 960 and 0 <= y1 < y2 <= 540
        assert 0 <= face["fake_probability"] <= 1 and face["detection_probability"] >= 0.95
        assert Path(face["heatmap"]).read_bytes().startswith(b"\x89PNG")
    assert record["fake_probability"] == max(face["fake_probability"] for face in record["faces"])


def test_analyze_reports_an_unreadable_file_and_fails_after_the_others(
    demo_checkpoint: Path, samples_dir: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    stdout = io.StringIO()
    with pytest.raises(CommandError, match="1 of 2 images could not be read"):
        call_command(
            "analyze", str(broken), str(samples_dir / "real_frame_1.jpg"),
            checkpoint=demo_checkpoint, json=True, stdout=stdout,
        )  # fmt: skip
    error, analysed = (json.loads(line) for line in stdout.getvalue().splitlines())
    assert error["status"] == "error" and "cannot decode" in error["error"]
    assert analysed["status"] == "ok"


def test_analyze_prints_a_table_without_json(demo_checkpoint: Path, samples_dir: Path) -> None:
    output = _run("analyze", str(samples_dir / "fake_frame_0.jpg"), checkpoint=demo_checkpoint)
    assert "UNTRAINED" in output
    assert "2 face(s)" in output
    assert "P(fake)" in output


def test_analyze_with_a_missing_checkpoint_says_what_to_do(
    tmp_path: Path, samples_dir: Path
) -> None:
    with pytest.raises(CommandError, match="checkpoint not found"):
        _run("analyze", str(samples_dir / "fake_frame_0.jpg"), checkpoint=tmp_path / "none.pth")


def test_fetch_model_installs_the_verified_download(
    demo_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    requested: dict[str, str] = {}

    def fake_download(*, repo_id: str, filename: str) -> str:
        requested.update(repo_id=repo_id, filename=filename)
        return str(demo_checkpoint)

    monkeypatch.setattr(fetch_model, "hf_hub_download", fake_download)
    target = tmp_path / "models" / "published.pth"
    settings.DEEPFAKE_CHECKPOINT = str(target)
    output = _run("fetch_model")
    assert requested == {
        "repo_id": "aaronespasa/deepfake-detection-resnetinceptionv1",
        "filename": "resnetinceptionv1_epoch_32.pth",
    }
    installed = load_checkpoint(target)
    assert f"version {installed.version}" in output
    for key, value in load_checkpoint(demo_checkpoint).state_dict.items():
        assert torch.equal(installed.state_dict[key], value), key
    assert (
        installed.card is not None and installed.card.trained and installed.card.input_size == 256
    )
    assert "huggingface" in installed.card.source.lower() or "hub" in installed.card.source


def test_fetch_model_offline_fails_with_a_clear_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    def offline(**_kwargs: str) -> str:
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setattr(fetch_model, "hf_hub_download", offline)
    settings.DEEPFAKE_CHECKPOINT = str(tmp_path / "model.pth")
    with pytest.raises(CommandError, match=r"could not download .* \(offline.*--source"):
        _run("fetch_model")
    assert not (tmp_path / "model.pth").exists()


def test_fetch_model_refuses_a_wrong_checkpoint_and_keeps_the_old_one(
    demo_checkpoint: Path, tmp_path: Path
) -> None:
    import torch

    wrong = tmp_path / "wrong.pth"
    torch.save({"model_state_dict": {"fc.weight": torch.zeros(2, 2)}}, wrong)
    target = tmp_path / "installed.pth"
    target.write_bytes(b"previous model")
    with pytest.raises(CommandError, match=r"refusing to install.*missing keys"):
        _run("fetch_model", source=wrong, output=target)
    assert target.read_bytes() == b"previous model"


def test_fetch_model_from_a_local_source_keeps_its_model_card(
    demo_checkpoint: Path, tmp_path: Path
) -> None:
    target = tmp_path / "installed.pth"
    _run("fetch_model", source=demo_checkpoint, output=target)
    card = read_card(target)
    assert card is not None and card.trained is False


def test_prepare_model_exports_the_graph_before_any_analysis(
    demo_checkpoint: Path, tmp_path: Path, settings: Any
) -> None:
    settings.DEEPFAKE_CHECKPOINT = str(demo_checkpoint)
    settings.DEEPFAKE_RUNTIME = "onnxruntime"
    settings.DEEPFAKE_MODEL_CACHE = str(tmp_path / "cache")
    output = _run("prepare_model")
    assert "ready in" in output
    assert len(list((tmp_path / "cache").glob("classifier-*.onnx"))) == 1
