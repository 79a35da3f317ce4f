"""``objsearch models`` and ``objsearch models save`` on the command line."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from indexer.models.clip import ClipEmbedder
from retrieval.cli import app


def _text(output: str) -> str:
    """CLI output with terminal line wrapping undone."""
    return " ".join(output.split())


def test_cli_save_prints_how_to_use_it(tiny_siglip2_dir: Path, tmp_path: Path) -> None:
    dest = tmp_path / "siglip2"
    result = CliRunner().invoke(app, ["models", "save", str(tiny_siglip2_dir), str(dest)])
    assert result.exit_code == 0, result.output
    assert "siglip2 model, 32-d" in result.output
    assert f"OBJSEARCH_CLIP_MODEL={dest}" in result.output.replace("\n", "")
    assert ClipEmbedder(str(dest), "cpu", backend="torch").family.name == "siglip2"


def test_unreachable_hub_is_one_clear_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    dest = tmp_path / "clip"
    result = CliRunner().invoke(
        app, ["models", "save", "google/siglip2-base-patch16-224", str(dest)]
    )
    assert result.exit_code != 0
    text = _text(result.output)
    assert "hub cannot be reached" in text and "No internet?" in text
    assert "Traceback" not in result.output
    assert not dest.exists() and not list(tmp_path.iterdir())


def test_detector_download_offline_is_one_clear_error(tmp_path: Path, monkeypatch) -> None:
    import indexer.models.save as model_save

    monkeypatch.setattr(model_save, "_RELEASES_HOST", "no-such-host.invalid")
    result = CliRunner().invoke(app, ["models", "save", "yolo11n.pt", str(tmp_path / "det")])
    assert result.exit_code != 0 and "No internet?" in _text(result.output)
    assert not list(tmp_path.rglob("*.pt"))


def test_models_lists_families_default_and_measured_speed() -> None:
    result = CliRunner().invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["family"] for r in rows] == ["clip", "siglip", "siglip2", "altclip", "open_clip"]
    assert [r["family"] for r in rows if r["default"]] == ["clip"]
    assert all(r["hub_ids"] and all(h["embed_dim"] > 0 for h in r["hub_ids"]) for r in rows)
    assert all(h["license"] != "?" for r in rows for h in r["hub_ids"])
    assert rows[0]["hub_ids"][0]["license"] == "MIT"  # the default stays permissive
    mobile = rows[-1]["hub_ids"][0]
    assert "MobileCLIP2" in mobile["id"] and "Apple" in mobile["license"]
    clip = rows[0]
    assert clip["photos_per_s"] is None or clip["photos_per_s"] > 0
    assert clip["measured_shape"] is None or "ViT-B/32" in clip["measured_shape"]
    table = CliRunner().invoke(app, ["models"], env={"COLUMNS": "200"})
    assert table.exit_code == 0
    assert "openai/clip-vit-base-patch32" in table.output and "default" in table.output
    assert all(name in table.output for name in ("SigLIP 2", "AltCLIP", "rtdetr", "licence"))
    assert "hf-hub:timm/MobileCLIP2-S0-OpenCLIP" in table.output
