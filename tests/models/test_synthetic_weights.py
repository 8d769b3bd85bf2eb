"""The synthetic-weights recipe is bit-exact with the official golden data."""

import hashlib

import numpy as np
import pytest
import torch
from edgetam_export.models import state_dict_sha256, synthetic_state_dict
from edgetam_export.models.checkpoint_layout import checkpoint_layout
from edgetam_export.models.synthetic_weights import synthetic_tensor

from tests.conftest import GOLDEN


def _rows():
    lines = (GOLDEN / "state_dict_keys.tsv").read_text().strip().splitlines()[1:]
    return [line.split("\t") for line in lines]


def test_layout_matches_official_key_table():
    rows = _rows()
    layout = checkpoint_layout()
    assert len(layout) == 982
    assert [s.key for s in layout] == [r[0] for r in rows]


def test_every_tensor_hash_matches(synthetic_sd):
    mismatched = [
        key
        for key, _shape, _dtype, _rule, sha in _rows()
        if hashlib.sha256(np.ascontiguousarray(synthetic_sd[key].numpy()).tobytes()).hexdigest()[:16] != sha
    ]
    assert mismatched == []


def test_whole_checkpoint_hash(synthetic_sd, golden_json):
    assert state_dict_sha256(synthetic_sd) == golden_json["weights_sha256"]


def test_salts_differ_and_are_deterministic():
    a = synthetic_tensor("no_obj_ptr", (1, 256), salt=1)
    b = synthetic_tensor("no_obj_ptr", (1, 256), salt=1)
    c = synthetic_tensor("no_obj_ptr", (1, 256), salt=0)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_rules_and_offsets():
    sd = synthetic_state_dict(3)
    assert sd["image_encoder.trunk.body.stem.conv1.bn.num_batches_tracked"].dtype == torch.int64
    var = sd["image_encoder.trunk.body.stem.conv1.bn.running_var"]
    assert float(var.min()) >= 0.5 and float(var.max()) <= 1.5
    # R10 + offset: the object-score bias is shifted by +2.
    assert float(sd["sam_mask_decoder.pred_obj_score_head.layers.2.bias"]) > 1.5


def test_unknown_rule_is_an_error():
    with pytest.raises(ValueError, match="no synthetic-weight rule"):
        synthetic_tensor("something.odd", (), salt=0)
