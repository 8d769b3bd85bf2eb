"""Checkpoint loading is strict and its errors list what is wrong."""

import pytest
import torch
from edgetam_export.models import CheckpointError, load_checkpoint, synthetic_state_dict


def test_roundtrip_official_layout(tmp_path):
    sd = synthetic_state_dict(0)
    path = tmp_path / "edgetam.pt"
    torch.save({"model": sd}, path)
    loaded = load_checkpoint(path)
    assert list(loaded) == list(sd)
    assert all(torch.equal(loaded[k], sd[k]) for k in sd)


def test_errors_list_missing_unexpected_and_misshaped():
    sd = synthetic_state_dict(0)
    del sd["no_obj_ptr"]
    sd["extra.weight"] = torch.zeros(3)
    sd["no_mem_embed"] = torch.zeros(1, 256)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(sd)
    msg = str(e.value)
    assert "missing keys (1): no_obj_ptr" in msg
    assert "unexpected keys (1): extra.weight" in msg
    assert "no_mem_embed (expected [1, 1, 256], got [1, 256])" in msg


def test_unreadable_and_missing_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="could not read"):
        load_checkpoint(bad)
    odd = tmp_path / "odd.pt"
    torch.save({"weights": [1, 2]}, odd)
    with pytest.raises(CheckpointError, match="expected"):
        load_checkpoint(odd)


def test_a_folder_given_as_checkpoint_says_what_it_holds_and_what_is_expected(tmp_path):
    from edgetam_export.models import CheckpointError, load_checkpoint

    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "notes.txt").write_text("")
    (folder / "model.bin").write_bytes(b"")
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(folder)
    msg = str(e.value)
    assert "not found" not in msg and "\n" not in msg
    assert "holds: model.bin, notes.txt" in msg
    assert "edgetam.pt" in msg and "config.json + model.safetensors" in msg
    # a Hugging Face-shaped folder is read as one, and its problem named in one line
    hf = tmp_path / "edgetam-hf"
    hf.mkdir()
    (hf / "config.json").write_text("{}")
    (hf / "model.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"config\.json: model_type None is not an EdgeTAM checkpoint"):
        load_checkpoint(hf)
