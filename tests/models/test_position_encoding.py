"""Factored constant tables: GridTable rebuilds the sine / RoPE tables bit for bit, DenseFourierTable the dense PE to ~1e-6."""

from __future__ import annotations

import math

import pytest
import torch
from edgetam_export.models.position_encoding import GridTable, sine_position_encoding
from edgetam_export.models.prompt_encoder import DenseFourierTable, RandomFourierPE
from edgetam_export.models.rope import axial_rope_tables


@pytest.mark.parametrize(
    "table",
    [
        sine_position_encoding(256, 64, 64).flatten(1).t(),
        sine_position_encoding(64, 64, 64).flatten(1).t(),
        *axial_rope_tables(256, 64, 64),
        *axial_rope_tables(256, 16, 16),
    ],
    ids=["sine256", "sine64", "rope_cos", "rope_sin", "rope16_cos", "rope16_sin"],
)
def test_grid_table_rebuilds_the_table_exactly(table):
    side = math.isqrt(table.shape[0])
    g = GridTable(table, side, side)
    assert torch.equal(g(), table)
    assert g.rows.numel() + g.cols.numel() == 2 * side * table.shape[1]  # what an artifact carries
    assert torch.equal(g.half()(), table.half())  # fp16 artifacts: the same exact rebuild


def test_grid_table_refuses_a_table_that_needs_both_axes():
    t = torch.arange(16.0).reshape(16, 1).repeat(1, 3)  # token index: varies with row and column
    with pytest.raises(ValueError, match="rows or the columns only"):
        GridTable(t, 4, 4)


def test_dense_fourier_table_matches_the_direct_dense_pe():
    pe = RandomFourierPE()
    pe.positional_encoding_gaussian_matrix.copy_(
        torch.randn(2, 128, generator=torch.Generator().manual_seed(3))
    )
    direct = pe.dense(64, 64)  # (256, 64, 64) float32, the reference buffer
    factored = DenseFourierTable(pe, 64, 64)()
    assert factored.shape == direct.shape
    # float64 truth of the same formula: both float32 forms are within a few ulp of it
    pe64 = RandomFourierPE().double()
    pe64.positional_encoding_gaussian_matrix.copy_(pe.positional_encoding_gaussian_matrix.double())
    truth = pe64.dense(64, 64)
    err_factored = (factored.double() - truth).abs().max().item()
    err_direct = (direct.double() - truth).abs().max().item()
    assert err_factored < 1e-6, err_factored
    assert (factored - direct).abs().max().item() < 2e-6 + err_direct
    # a wrong factorisation (cos and sin swapped) is far off: the check can fail
    bad = DenseFourierTable(pe, 64, 64)
    bad.sx, bad.cx = bad.cx, bad.sx
    assert (bad() - direct).abs().max().item() > 0.5


def test_grid_table_add_to_equals_adding_the_table():
    table = sine_position_encoding(64, 64, 64).flatten(1).t()
    g = GridTable(table, 64, 64)
    x = torch.randn(1, 4096, 64, generator=torch.Generator().manual_seed(0))
    assert torch.equal(g.add_to(x), x + table)
