"""A cheap stand-in runtime with the real contracts, for structural tracker tests (no numerics)."""

from __future__ import annotations

import numpy as np

from edgetam_export.runtime.base import Runtime


class FakeRuntime(Runtime):
    """Shape-correct outputs derived cheaply from the inputs; records the bank occupancy it sees."""

    name = "fake"

    def __init__(self, contracts, constants):
        self.contracts = contracts
        self.constants = constants
        self.options = {}
        self.bank_log: list[
            tuple[int, int]
        ] = []  # (valid spatial slots, valid pointers) per memory_attention call

    def _run(self, graph, feeds):
        if graph == "image_encoder":
            m = float(feeds["image"].mean())
            return {
                "feat_s0": np.full((1, 32, 256, 256), m, np.float32),
                "feat_s1": np.full((1, 64, 128, 128), m, np.float32),
                "vis": np.full((1, 256, 64, 64), m, np.float32),
            }
        if graph == "memory_attention":
            self.bank_log.append((int(feeds["slot_valid"].sum()), int(feeds["ptr_valid"].sum())))
            return {"pix": feeds["vis"] + 0.01 * float(feeds["slot_valid"].sum())}
        if graph == "prompt_decoder":
            yy, xx = np.mgrid[0:256, 0:256]
            base = np.cos(xx / 9.0) + np.sin(yy / 7.0) + float(feeds["pix"].mean())
            masks = np.stack([base + k for k in range(4)])[None].astype(np.float32)
            return {
                "masks": masks,
                "iou": np.array([[0.1, 0.6, 0.3, 0.2]], np.float32),
                "obj_logit": np.ones((1, 1), np.float32),
                "ptr_all": np.ones((1, 4, 256), np.float32),
            }
        if graph == "memory_encoder":
            return {"mem": np.full((1, 512, 64), float(feeds["mask_low"].mean()), np.float32)}
        raise KeyError(graph)
