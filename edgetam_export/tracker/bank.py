"""The memory bank as explicit, fixed-size tensors (docs/MODEL.md §3.5).

Layout handed to the ``memory_attention`` graph for one object and one frame ``t``:

===============  ==================  ==========================================================
tensor           shape               meaning
===============  ==================  ==========================================================
``mem``          (1, S*512, 64)      slot j occupies rows [512j, 512j+512): the 512 perceiver
                                     tokens (256 global latents, then 256 2-D latents) of one
                                     stored frame
``mem_tpos``     (1, S, 7)           one-hot temporal index per slot: 6 for conditioning frames,
                                     d-1 for the tracked frame d steps away (d = 1..6)
``slot_valid``   (1, S)              1 for filled slots, 0 for empty ones (their keys are masked)
``ptr``          (1, P, 256)         object pointers: conditioning frames not in the future, then
                                     the nearest tracked frames d = 1..15 (stop at video bounds)
``ptr_valid``    (1, P)              1 for filled pointer slots
===============  ==================  ==========================================================

S = max_cond_frames + 6 and P = max_cond_frames + 15. Empty slots hold zeros. Slot order
does not matter to attention (keys carry their own position), so slots are filled
conditioning-first, then by increasing distance. An application porting the tracker to
Swift or C++ keeps, per object, a dictionary frame -> (mem (512,64), ptr (256,)) for
conditioning frames and for the last 15 tracked frames, and fills these five arrays with
:func:`assemble_bank`'s rules.

When there are more conditioning frames than ``max_cond_frames``, the closest ones are
selected as in the official ``select_closest_cond_frames`` (closest before, closest at or
after, then nearest) and the others act as ordinary recent memories; this is the only
deviation from the official (unlimited) behaviour.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..models.constants import NUM_MASKMEM

MEM_TOKENS = 512
MEM_DIM = 64
PTR_DIM = 256
MAX_RECENT_PTRS = 15  # official max_obj_ptrs_in_encoder (16) - 1
COND_TPOS = NUM_MASKMEM - 1


@dataclass(frozen=True)
class MemoryEntry:
    """What one stored frame contributes for one object: mem (512, 64) and ptr (256,)."""

    mem: np.ndarray
    ptr: np.ndarray


@dataclass
class BankTensors:
    """The memory_attention inputs for one object (shapes in the module docstring)."""

    mem: np.ndarray
    mem_tpos: np.ndarray
    ptr: np.ndarray
    slot_valid: np.ndarray
    ptr_valid: np.ndarray
    spatial_frames: list[int]
    ptr_frames: list[int]

    def feeds(self, vis: np.ndarray) -> dict[str, np.ndarray]:
        """Inputs of the memory_attention graph, with the current frame's ``vis`` (1,256,64,64)."""
        return {
            "vis": vis,
            "mem": self.mem,
            "mem_tpos": self.mem_tpos,
            "ptr": self.ptr,
            "slot_valid": self.slot_valid,
            "ptr_valid": self.ptr_valid,
        }


def select_closest_cond_frames(
    frame_idx: int, cond_frames: list[int], max_cond: int
) -> tuple[list[int], list[int]]:
    """Split conditioning frames into (selected, unselected), at most ``max_cond`` selected."""
    if len(cond_frames) <= max_cond:
        return sorted(cond_frames), []
    if max_cond < 2:
        raise ValueError("max_cond_frames must be >= 2 to select among several conditioning frames")
    selected: list[int] = []
    before = [t for t in cond_frames if t < frame_idx]
    after = [t for t in cond_frames if t >= frame_idx]
    if before:
        selected.append(max(before))
    if after:
        selected.append(min(after))
    rest = sorted((t for t in cond_frames if t not in selected), key=lambda t: abs(t - frame_idx))
    selected += rest[: max_cond - len(selected)]
    return sorted(selected), sorted(t for t in cond_frames if t not in selected)


def assemble_bank(
    frame_idx: int,
    cond: Mapping[int, MemoryEntry],
    noncond: Mapping[int, MemoryEntry],
    *,
    reverse: bool,
    num_frames: int | None,
    max_cond_frames: int,
    num_spatial_slots: int,
    num_ptr_slots: int,
) -> BankTensors:
    """Fill the fixed-size bank for tracking ``frame_idx`` in direction ``reverse``.

    ``cond`` / ``noncond`` map frame index -> :class:`MemoryEntry` of this object.
    ``num_frames`` bounds the pointer walk (None when streaming: only 0 bounds it).
    """
    selected, unselected = select_closest_cond_frames(frame_idx, list(cond), max_cond_frames)
    unselected_map = {t: cond[t] for t in unselected}
    step = -1 if reverse else 1

    spatial: list[tuple[int, int, MemoryEntry]] = [(t, COND_TPOS, cond[t]) for t in selected]
    for d in range(1, NUM_MASKMEM):
        f = frame_idx - step * d
        entry = noncond.get(f, unselected_map.get(f))
        if entry is not None:
            spatial.append((f, d - 1, entry))

    ptrs: list[tuple[int, MemoryEntry]] = [
        (t, cond[t]) for t in selected if (t >= frame_idx if reverse else t <= frame_idx)
    ]
    for d in range(1, MAX_RECENT_PTRS + 1):
        f = frame_idx - step * d
        if f < 0 or (num_frames is not None and f >= num_frames):
            break
        entry = noncond.get(f, unselected_map.get(f))
        if entry is not None:
            ptrs.append((f, entry))

    if len(spatial) > num_spatial_slots or len(ptrs) > num_ptr_slots:
        raise ValueError(
            f"bank needs {len(spatial)} spatial / {len(ptrs)} pointer slots but the graph has "
            f"{num_spatial_slots} / {num_ptr_slots}"
        )
    mem = np.zeros((1, num_spatial_slots * MEM_TOKENS, MEM_DIM), np.float32)
    tpos = np.zeros((1, num_spatial_slots, NUM_MASKMEM), np.float32)
    slot_valid = np.zeros((1, num_spatial_slots), np.float32)
    for j, (_, tp, entry) in enumerate(spatial):
        mem[0, j * MEM_TOKENS : (j + 1) * MEM_TOKENS] = entry.mem
        tpos[0, j, tp] = 1.0
        slot_valid[0, j] = 1.0
    ptr = np.zeros((1, num_ptr_slots, PTR_DIM), np.float32)
    ptr_valid = np.zeros((1, num_ptr_slots), np.float32)
    for j, (_, entry) in enumerate(ptrs):
        ptr[0, j] = entry.ptr
        ptr_valid[0, j] = 1.0
    return BankTensors(
        mem, tpos, ptr, slot_valid, ptr_valid, [f for f, _, _ in spatial], [f for f, _ in ptrs]
    )
