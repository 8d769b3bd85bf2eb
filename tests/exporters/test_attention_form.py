"""Every artifact of a graph with attention records its plugin's measured attention form; the image encoder records none."""

from __future__ import annotations

from edgetam_export.exporters.base import ATTENTION_GRAPHS, exporter_class


def test_attention_form_recorded(exported_bundles):
    seen = set()
    for bundle in exported_bundles.values():
        for a in bundle.artifacts:
            form = exporter_class(a["backend"]).attention_form
            assert form, a["backend"]
            if a["graph"] in ATTENTION_GRAPHS:
                assert a["notes"].get("attention") == form, (a["backend"], a["graph"], a["precision"])
                seen.add(a["backend"])
            else:
                assert "attention" not in a["notes"], (a["backend"], a["graph"])
    assert seen == {"onnx", "executorch", "coreml"}
