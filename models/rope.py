"""Real-valued axial rotary position encoding (RoPE) for the memory attention.

EdgeTAM rotates channel pairs ``(2p, 2p+1)`` of a 256-wide head by an angle that depends on
the token's grid position: pairs ``p < 64`` use ``x·f_p``, pairs ``p >= 64`` use
``y·f_{p-64}``, with ``f_j = θ^(-4j/256)`` and, for token ``n`` of a ``w``-wide grid,
``x = n mod w`` and ``y = n div w``. Each pair turns as ``(a, b) -> (a·cos − b·sin,
a·sin + b·cos)``.

The official code does this with complex numbers, which no export backend accepts. Here the
angles become two real tables ``cos``/``sin`` of shape (N, D/2), precomputed once and stored
as buffers by the consumer, and the rotation is one of two equivalent real forms:

* ``"pairs"``: the checkpoint channel layout (pairs interleaved). Needs a reshape to
  (..., D/2, 2) and strided picks; this is what the reference uses by default.
* ``"halves"``: "rotate-half" layout, where the channels of q and k are permuted so that all
  even channels come first and all odd channels second (:func:`rotate_half_permutation`).
  The rotation is then only slicing, multiplication and concatenation. A dot product
  ``q·k`` is unchanged when q and k share the permutation, so permuting the output rows of
  q_proj / k_proj once (see ``MemoryAttention.fold_rotate_half_``) makes it exact.
"""

from __future__ import annotations

import torch

ROPE_LAYOUTS = ("pairs", "halves")


def axial_rope_angles(head_dim: int, width: int, height: int, theta: float = 10000.0) -> torch.Tensor:
    """Rotation angle of every channel pair for every token of a ``height x width`` grid.

    Returns (width·height, head_dim/2) float32, tokens row-major (``n = y·width + x``); the
    first head_dim/4 columns are the x angles, the rest the y angles. Computed with the same
    float32 operations as the official table, so cos/sin are bit-identical.
    """
    if head_dim % 4:
        raise ValueError(f"head_dim must be a multiple of 4, got {head_dim}")
    quarter = head_dim // 4
    freqs = 1.0 / (theta ** (torch.arange(0, head_dim, 4)[:quarter].float() / head_dim))
    n = torch.arange(width * height, dtype=torch.float32)
    col = (n % width).float()
    row = torch.div(n, width, rounding_mode="floor").float()
    return torch.cat([torch.outer(col, freqs), torch.outer(row, freqs)], dim=-1)


def axial_rope_tables(
    head_dim: int, width: int, height: int, theta: float = 10000.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos, sin), each (width·height, head_dim/2) float32; see :func:`axial_rope_angles`."""
    angles = axial_rope_angles(head_dim, width, height, theta)
    return torch.cos(angles), torch.sin(angles)


def rotate_half_permutation(dim: int) -> torch.Tensor:
    """Channel order of the "halves" layout: (dim,) int64 ``[0, 2, 4, …, dim−2, 1, 3, …, dim−1]``."""
    return torch.cat([torch.arange(0, dim, 2), torch.arange(1, dim, 2)])


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, layout: str = "pairs") -> torch.Tensor:
    """Rotate ``x`` (..., N, D) by the tables ``cos``/``sin`` (N, D/2) (broadcast over leading dims).

    ``layout`` says how the channels of ``x`` are ordered: ``"pairs"`` (checkpoint order) or
    ``"halves"`` (even channels first; see the module docstring). Returns (..., N, D) in the
    same layout. Rows with cos = 1, sin = 0 leave their token exactly unchanged.
    """
    if layout == "pairs":
        pairs = x.unflatten(-1, (-1, 2))
        a, b = pairs[..., 0], pairs[..., 1]
        return torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2)
    if layout == "halves":
        half = x.shape[-1] // 2
        a, b = x[..., :half], x[..., half:]
        return torch.cat((a * cos - b * sin, a * sin + b * cos), dim=-1)
    raise ValueError(f"unknown RoPE layout {layout!r}; expected one of {ROPE_LAYOUTS}")
