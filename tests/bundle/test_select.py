"""With several backends/precisions and none chosen, a bundle picks the documented default for the host."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgetam_export.bundle import Bundle, BundleError, default_choice


def _bundle(choices: dict[str, list[str]]) -> Bundle:
    arts = [
        {"backend": b, "precision": p, "graph": g, "path": f"{b}/{g}.{p}"}
        for b, ps in choices.items()
        for p in ps
        for g in ("image_encoder", "prompt_decoder", "memory_encoder", "memory_attention")
    ]
    return Bundle(Path("b"), {}, {}, {}, {}, arts)


MAKE_EXPORT = {"coreml": ["fp16"], "executorch": ["fp32"], "onnx": ["fp32"]}


@pytest.mark.parametrize(
    "available, system, expected",
    [
        (MAKE_EXPORT, "Linux", ("executorch", "fp32")),
        (MAKE_EXPORT, "Darwin", ("coreml", "fp16")),
        ({"onnx": ["fp16", "fp32"], "coreml": ["fp32"]}, "Linux", ("onnx", "fp32")),
        ({"coreml": ["fp16", "fp32"]}, "Darwin", ("coreml", "fp16")),
        ({"coreml": ["fp16", "fp32"]}, "Windows", ("coreml", "fp32")),
        ({"executorch": ["fp16"]}, "Linux", ("executorch", "fp16")),
    ],
)
def test_default_choice_policy(available, system, expected):
    assert default_choice(available, system=system) == expected


def test_select_defaults_and_respects_explicit_choices(monkeypatch):
    monkeypatch.setattr("platform.system", lambda: "Linux")
    b = _bundle({"onnx": ["fp16", "fp32"], "executorch": ["fp16", "fp32"]})
    assert b.select() == ("executorch", "fp32")  # raised "choose one with backend=" before
    assert b.select("onnx") == ("onnx", "fp32")
    assert b.select(precision="fp16") == ("executorch", "fp16")
    assert b.select("onnx", "fp16") == ("onnx", "fp16")
    with pytest.raises(BundleError, match="no 'coreml' artifacts"):
        b.select("coreml")
    only16 = _bundle({"onnx": ["fp16"], "executorch": ["fp32"]})
    assert only16.select(precision="fp16") == ("onnx", "fp16")
    with pytest.raises(BundleError, match="available"):
        only16.select("executorch", "fp16")


@pytest.mark.parametrize(
    "available, system, expected",
    [
        ({"onnx": ["int8", "fp32", "mixed"]}, "Linux", ("onnx", "fp32")),
        ({"onnx": ["mixed", "fp16", "int8"]}, "Linux", ("onnx", "fp16")),
        ({"coreml": ["int8", "fp32", "fp16"]}, "Darwin", ("coreml", "fp16")),
        ({"onnx": ["mixed", "int8"]}, "Linux", ("onnx", "int8")),
    ],
)
def test_quantized_precisions_are_chosen_only_when_asked_or_alone(available, system, expected):
    assert default_choice(available, system) == expected
    b = _bundle(available)
    backend = next(iter(available))
    for p in available[backend]:  # asked for, each is selected
        assert b.select(backend, p) == (backend, p)
