"""Settings: every choice resolved from argument, environment and default in one place."""

from __future__ import annotations

import pytest

import indexer.settings as settings
from indexer.errors import ObjsearchError
from indexer.settings import (
    DEFAULT_CLIP_MODEL,
    ENV_CLIP_MODEL,
    ENV_PRECISION,
    ENV_RAY_ADDRESS,
    BatchPlan,
    DetectOptions,
    RaySettings,
    batch_plan,
    check_quantized_backend,
    choose_backend,
    choose_precision,
    refuse_unrunnable_precision,
    resolve_clip_model,
    resolve_ray_address,
)


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            return fh.read()
    except OSError:
        return ""


def test_precision_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_PRECISION, raising=False)
    assert choose_precision("fp32", "cpu") == "fp32"
    assert choose_precision("auto", "cuda") == "fp16"
    flags = _cpu_flags()
    has_bf16 = "amx_bf16" in flags or "avx512_bf16" in flags
    assert choose_precision("auto", "cpu") == ("bf16" if has_bf16 else "fp32")
    monkeypatch.setattr(settings, "cpu_has_fast_bf16", lambda: True)
    assert choose_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(settings, "cpu_has_fast_bf16", lambda: False)
    assert choose_precision("auto", "cpu") == "fp32"
    monkeypatch.setenv(ENV_PRECISION, "bf16")
    assert choose_precision(None, "cpu") == "bf16"
    with pytest.raises(Exception, match="Unknown precision"):
        choose_precision("int3", "cpu")


def test_clip_model_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_CLIP_MODEL, raising=False)
    assert resolve_clip_model(None) == DEFAULT_CLIP_MODEL
    assert resolve_clip_model(None, "recorded/model") == "recorded/model"
    monkeypatch.setenv(ENV_CLIP_MODEL, "env/model")
    assert resolve_clip_model(None, "recorded/model") == "env/model"
    assert resolve_clip_model("given/model", "recorded/model") == "given/model"


def test_backend_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(settings.ENV_BACKEND, raising=False)
    expected = "openvino" if settings.openvino_available() else "torch"
    assert choose_backend("auto", "cpu") == expected
    assert choose_backend("auto", "cuda") == "torch"
    assert choose_backend("torch", "cpu") == "torch"
    with pytest.raises(ObjsearchError, match="runs on the CPU"):
        choose_backend("openvino", "cuda")
    with pytest.raises(ObjsearchError, match="Unknown backend"):
        choose_backend("tensorrt", "cpu")


def test_options_validate() -> None:
    with pytest.raises(ObjsearchError):
        DetectOptions(confidence=2)
    with pytest.raises(ObjsearchError):
        DetectOptions(padding=-0.1)


def test_ray_address_from_flag_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_RAY_ADDRESS, raising=False)
    assert resolve_ray_address(None) is None  # no flag, no variable: a local run
    for address in ("auto", "local", "ray://head:10001", "10.0.0.5:6379"):
        assert resolve_ray_address(address) == address
    monkeypatch.setenv(ENV_RAY_ADDRESS, "ray://cluster:10001")
    assert resolve_ray_address(None) == "ray://cluster:10001"
    assert resolve_ray_address("local") == "local"  # the flag wins
    for bad in ("head", "head:port", "http://head:8265"):
        with pytest.raises(ObjsearchError, match="Unknown Ray address"):
            resolve_ray_address(bad)


def test_ray_settings_validate() -> None:
    with pytest.raises(ObjsearchError, match="actors"):
        RaySettings(actors=0)
    with pytest.raises(ObjsearchError, match="gpus per actor"):
        RaySettings(gpus_per_actor=-1)


@pytest.mark.parametrize(
    ("device", "cores", "expected"),
    [
        ("cpu", 2, BatchPlan(16, 32, 2)),  # the models use every core already
        ("cpu", 64, BatchPlan(16, 32, 2)),
        ("cuda", 16, BatchPlan(128, 1024, 12)),  # a GPU needs big batches and many decoders
        ("cuda:1", 4, BatchPlan(128, 1024, 2)),
    ],
)
def test_batch_plan_defaults_follow_the_device(
    monkeypatch: pytest.MonkeyPatch, device: str, cores: int, expected: BatchPlan
) -> None:
    monkeypatch.setattr(settings.os, "cpu_count", lambda: cores)
    assert batch_plan(device) == expected


def test_batch_plan_keeps_explicit_choices_and_refuses_zero() -> None:
    assert batch_plan("cuda", 8, 32, 3) == BatchPlan(8, 32, 3)
    for bad in ({"photos": 0}, {"embed": 0}, {"decode_workers": 0}):
        with pytest.raises(ObjsearchError, match="at least 1"):
            batch_plan("cpu", **bad)


def test_int8_precision_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    assert choose_precision("int8", "cpu") == "int8"
    monkeypatch.setenv("OBJSEARCH_PRECISION", "INT8")
    assert choose_precision(None, "cpu") == "int8"
    with pytest.raises(ObjsearchError, match="--device cpu"):
        choose_precision(None, "cuda")
    with pytest.raises(ObjsearchError, match="--device cpu"):
        refuse_unrunnable_precision(None, None, "cuda:1")
    with pytest.raises(ObjsearchError, match="needs the OpenVINO backend"):
        refuse_unrunnable_precision(None, "torch", None)
    refuse_unrunnable_precision(None, "auto", "cpu")  # fine: auto picks OpenVINO on a CPU
    refuse_unrunnable_precision("bf16", "torch", "cuda")  # not quantized: nothing to refuse
    check_quantized_backend("int8", "openvino")
    with pytest.raises(ObjsearchError, match="needs the OpenVINO backend"):
        check_quantized_backend("int8", "torch")


def test_only_settings_reads_the_environment() -> None:
    """Settings are resolved once: no other module of the packages reads os.environ."""
    import ast
    from pathlib import Path

    root = Path(settings.__file__).resolve().parents[1]
    readers = []
    for package in ("indexer", "retrieval"):
        for path in sorted((root / package).rglob("*.py")):
            if path.name == "settings.py" and path.parent.name == "indexer":
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                name = node.attr if isinstance(node, ast.Attribute) else None
                if name in ("environ", "getenv", "putenv", "unsetenv"):
                    readers.append(f"{path.relative_to(root)}:{node.lineno}")
    assert readers == []


def test_hub_cache_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.delenv("HF_HOME", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert settings.hub_cache_root() == str(tmp_path / "xdg" / "huggingface" / "hub")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert settings.hub_cache_root() == str(tmp_path / "hf" / "hub")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "explicit"))
    assert settings.hub_cache_root() == str(tmp_path / "explicit")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert settings.hub_offline()
