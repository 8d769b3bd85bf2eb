"""The backend-agnostic EdgeTAM video tracker (docs/MODEL.md §3), shaped like Hugging Face's EdgeTamVideo API.

It runs four static graphs through a :class:`~edgetam_export.runtime.base.Runtime` and
keeps the memory bank on the host as explicit tensors (see :mod:`.bank`). Semantics follow
the official ``SAM2VideoPredictor`` as configured for EdgeTAM: prompted frames become
conditioning frames (memory from the binarized, consolidated mask), refinement clicks on
tracked frames use the previous logits as mask prompt, tracked frames use sigmoid
memories, object-score gating, reverse propagation, several objects (image encoder once per
frame) and streaming with a bounded bank.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..models.constants import GRAPH_NAMES, LOW_RES, NO_OBJ_SCORE, NUM_MASKMEM
from ..preprocessing import preprocess, to_model_frame
from ..runtime.base import Runtime
from ..video import LazyVideo, read_video
from .bank import MemoryEntry, assemble_bank
from .decisions import decide_outputs
from .editing import clear_prompts_in_frame, prune_stream, remove_object
from .feeds import decoder_feeds, memory_encoder_feeds
from .postprocess import fill_holes, non_overlap, post_process_masks
from .prompting import PromptingMixin
from .prompts import parse_prompts
from .session import COND, NONCOND, FrameOutput, InferenceSession, PointPrompt


@dataclass
class TrackerOutput:
    """Result of one frame: pred_masks (N, 1, 256, 256) low-res logits, object_score_logits (N, 1).

    Objects are in ``obj_ids`` order. Use :meth:`Tracker.post_process_masks` for video resolution.
    """

    frame_idx: int
    obj_ids: list[int]
    pred_masks: np.ndarray
    object_score_logits: np.ndarray


def _size_pair(size) -> tuple[int, int]:
    """``original_size`` as (H, W) positive ints, or ``ValueError``."""
    try:
        h, w = size
    except (TypeError, ValueError):
        raise ValueError(f"original_size must be (height, width), got {size!r}") from None
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in (h, w)):
        raise ValueError(f"original_size must be two positive integers (height, width), got {size!r}")
    return int(h), int(w)


class Tracker(PromptingMixin):
    """Tracks objects through a video with any runtime that executes the four EdgeTAM graphs.

    Args:
        runtime: executes ``image_encoder``, ``prompt_decoder``, ``memory_encoder``,
            ``memory_attention`` by contract.
        fill_hole_area: fill background holes up to this area (px at 256²) in stored/output
            low-res masks; 8 as the official predictor, 0 reproduces the official CPU path.
        non_overlap_masks: keep only the highest-scoring object per pixel in outputs.
        feature_cache_size: image-encoder outputs kept per session (16 MiB per frame); 2 as
            the official predictor's single-frame cache plus one, larger to avoid re-encoding
            when the same frames are propagated several times.
    """

    def __init__(
        self,
        runtime: Runtime,
        fill_hole_area: int = 8,
        non_overlap_masks: bool = False,
        feature_cache_size: int = 2,
    ):
        missing = [g for g in GRAPH_NAMES if g not in runtime.contracts]
        if missing:
            raise ValueError(f"the tracker needs all four graphs; the runtime lacks {missing}")
        self.runtime = runtime
        self.fill_hole_area = int(fill_hole_area)
        self.non_overlap_masks = non_overlap_masks
        pd = runtime.contracts["prompt_decoder"]
        ma = runtime.contracts["memory_attention"]
        self.max_points = {s.name: s.shape for s in pd.inputs}["pt_xy"][1]
        shapes = {s.name: s.shape for s in ma.inputs}
        self.num_spatial_slots = shapes["mem_tpos"][1]
        self.num_ptr_slots = shapes["ptr"][1]
        self.max_cond_frames = self.num_spatial_slots - (NUM_MASKMEM - 1)
        self.no_obj_ptr = np.asarray(runtime.constants["no_obj_ptr"], np.float32).reshape(256)
        self.feature_cache_size = max(1, int(feature_cache_size))

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_reference(cls, model, max_points: int = 8, max_cond_frames: int = 2, **kwargs) -> Tracker:
        """Tracker on the PyTorch reference (fused export wrappers run eagerly)."""
        from ..runtime.torch_runtime import TorchRuntime

        return cls(TorchRuntime(model, max_points=max_points, max_cond_frames=max_cond_frames), **kwargs)

    @classmethod
    def from_bundle(
        cls,
        path: str | os.PathLike,
        backend: str | None = None,
        precision: str | None = None,
        expect_digest: str | None = None,
        **kwargs,
    ) -> Tracker:
        """Tracker on an exported bundle; the runtime is chosen from its manifest (checksums verified).

        ``backend`` (``onnx``, ``executorch``, ``coreml``) and ``precision`` (``fp32``, ``fp16``)
        select among the bundle's artifacts; what is omitted is the host's default
        (:func:`edgetam_export.bundle.default_choice`: ExecuTorch, then ONNX, then Core ML, fp32
        first off macOS; Core ML fp16 first on macOS). ``expect_digest`` (``sha256:<hex>``, as
        ``export`` and ``inspect`` print it) pins the bundle. ``path`` may also be a loaded :class:`~edgetam_export.bundle.Bundle`.
        Other keyword arguments go to :class:`Tracker` (e.g. ``fill_hole_area``).
        """
        from ..runtime.loader import as_bundle, runtime_from_bundle

        bundle = as_bundle(path)
        bundle.check_digest(expect_digest)
        backend, precision = bundle.select(backend, precision)
        bundle.require_graphs(backend, precision)
        return cls(runtime_from_bundle(bundle, backend=backend, precision=precision), **kwargs)

    # ------------------------------------------------------------------ session API
    def init_video_session(
        self,
        video: str | os.PathLike | Sequence[np.ndarray] | np.ndarray | None = None,
        video_height: int | None = None,
        video_width: int | None = None,
    ) -> InferenceSession:
        """Start a session on a list of (H, W, 3) uint8 RGB frames, a video file, a
        :class:`~edgetam_export.video.LazyVideo` (decoded on demand), or None (streaming).

        ``video_height`` / ``video_width`` declare the original resolution that prompt
        coordinates and post-processed masks refer to (default: the frames' own size).
        """
        if video is None:
            return InferenceSession(
                frames=[], video_height=video_height, video_width=video_width, streaming=True
            )
        if isinstance(video, LazyVideo):
            # Decoded on demand, bounded memory (frames are checked by the decoder: one size, RGB).
            h, w = video.height, video.width
            return InferenceSession(
                frames=video, video_height=video_height or h, video_width=video_width or w
            )
        if isinstance(video, (str, os.PathLike)):
            frames, _ = read_video(Path(video))
        else:
            frames = [np.asarray(f) for f in video]
        if not frames:
            raise ValueError("the video has no frames")
        h, w = frames[0].shape[:2]
        for i, f in enumerate(frames):
            if f.ndim != 3 or f.shape[2] != 3 or f.dtype != np.uint8:
                raise ValueError(f"frame {i}: expected (H, W, 3) uint8 RGB, got {f.dtype} {f.shape}")
            if f.shape[:2] != (h, w):
                raise ValueError(f"frame {i} is {f.shape[1]}x{f.shape[0]}, frame 0 is {w}x{h}")
        # An explicit size declares the original video resolution when the frames were resized
        # beforehand: prompts are given, and outputs returned, in that resolution.
        return InferenceSession(frames=frames, video_height=video_height or h, video_width=video_width or w)

    def add_inputs_to_inference_session(
        self,
        inference_session: InferenceSession,
        frame_idx: int,
        obj_ids: int | Sequence[int],
        input_points=None,
        input_labels=None,
        input_boxes=None,
        input_masks=None,
        clear_old_inputs: bool = True,
        original_size: tuple[int, int] | None = None,
    ) -> None:
        """Add prompts on ``frame_idx`` for one or several objects (run on the next call).

        Formats (video pixel coordinates, like Hugging Face's processor):
        ``input_points`` ``[[[[x, y], ...], ...]]`` (image, object, point, xy) or per object
        ``[[[x, y], ...], ...]``; ``input_labels`` matching (1 positive, 0 negative);
        ``input_boxes`` ``[[[x0, y0, x1, y1], ...]]`` or ``[[x0, y0, x1, y1], ...]``, one per object;
        ``input_masks``: one (H, W) boolean mask per object (list or (N, H, W) array).
        A box is the first two points (labels 2, 3) of its object; boxes and masks replace
        the object's earlier inputs on that frame. ``original_size`` (H, W) gives the video
        size when streaming before the first frame arrives.
        """
        s = inference_session
        ids = [obj_ids] if isinstance(obj_ids, (int, np.integer)) else list(obj_ids)
        if not ids or not all(isinstance(i, (int, np.integer)) for i in ids) or len(set(ids)) != len(ids):
            raise ValueError(f"obj_ids must be an int or a list of distinct ints, got {obj_ids!r}")
        ids = [int(i) for i in ids]
        self._check_frame_for_input(s, frame_idx)
        # Nothing below touches the session until every check passed: a call that raises leaves it as it was.
        video_size = (s.video_height, s.video_width)
        if original_size is not None:
            video_size = _size_pair(original_size)
        if video_size[0] is None or video_size[1] is None:
            raise ValueError("the video size is unknown: pass original_size=(H, W) when streaming")
        if input_points is None and input_boxes is None and input_masks is None:
            raise ValueError("give input_points (with input_labels), input_boxes or input_masks")
        if (input_points is None) != (input_labels is None):
            raise ValueError("input_points and input_labels must be given together")
        if input_masks is not None and (input_points is not None or input_boxes is not None):
            raise ValueError("a mask prompt cannot be combined with points or boxes in one call")
        if s.tracking_has_started:
            unknown = [i for i in ids if i not in s.obj_ids]
            if unknown:
                raise ValueError(
                    f"cannot add new object ids {unknown} after tracking started (objects: {s.obj_ids}); "
                    "call reset_inference_session() first"
                )

        pending = parse_prompts(
            ids,
            frame_idx,
            video_size,
            input_points,
            input_labels,
            input_boxes,
            input_masks,
            clear_old_inputs,
        )
        for p in pending:
            if p.points is not None:
                n = len(p.points.labels) + self._points_already_on(s, frame_idx, p.obj_id, clear_old_inputs)
                if n > self.max_points - 1:
                    raise ValueError(
                        f"object {p.obj_id}: {n} points/box corners on frame {frame_idx}, but the exported "
                        f"prompt decoder holds {self.max_points - 1} (+1 padding slot); export with a larger "
                        "--max-points"
                    )
        s.video_height, s.video_width = video_size
        for oid in ids:
            s.add_object(oid)
        s.pending.extend(pending)

    def __call__(
        self,
        inference_session: InferenceSession,
        frame_idx: int | None = None,
        frame: np.ndarray | None = None,
        reverse: bool = False,
    ) -> TrackerOutput:
        """Run one frame: the prompted frame ``frame_idx``, or the next streamed ``frame``."""
        s = inference_session
        if frame is not None:
            return self._stream_frame(s, frame)
        if frame_idx is None:
            raise ValueError("give frame_idx (video sessions) or frame (streaming)")
        self._check_frame_index(s, frame_idx, held=True)
        if any(p.frame_idx == frame_idx for p in s.pending):
            self._apply_pending(s, frame_idx)
            if s.streaming:
                self._preflight(s)
                return self._output(s, frame_idx, None)
            return self._output(s, frame_idx, self._consolidate(s, frame_idx, run_mem_encoder=False))
        stored = s.outputs[COND].get(frame_idx) or s.outputs[NONCOND].get(frame_idx)
        if stored is not None:
            return self._output(s, frame_idx, stored)
        self._apply_pending(s)
        self._preflight(s)
        if not s.outputs[COND]:
            raise ValueError("no prompts yet: add inputs with add_inputs_to_inference_session first")
        fo = self._track_frame(s, frame_idx, reverse)
        s.outputs[NONCOND][frame_idx] = fo
        s.frames_already_tracked[frame_idx] = reverse
        return self._output(s, frame_idx, fo)

    def propagate_in_video_iterator(
        self,
        inference_session: InferenceSession,
        start_frame_idx: int | None = None,
        max_frame_num_to_track: int | None = None,
        reverse: bool = False,
    ) -> Iterator[TrackerOutput]:
        """Track all objects through the video, yielding one :class:`TrackerOutput` per frame."""
        s = inference_session
        if s.streaming:
            raise ValueError(
                "propagate_in_video_iterator needs a whole video; stream frames with tracker(session, frame=...)"
            )
        self._apply_pending(s)
        self._preflight(s)
        if not s.outputs[COND]:
            raise ValueError("no prompts yet: add inputs with add_inputs_to_inference_session first")
        n = s.num_frames
        start = min(s.outputs[COND]) if start_frame_idx is None else int(start_frame_idx)
        self._check_frame_index(s, start)
        count = n if max_frame_num_to_track is None else int(max_frame_num_to_track)
        if count < 0:
            raise ValueError(f"max_frame_num_to_track must be >= 0, got {count}")
        if reverse:
            end = max(start - count, 0)
            order = range(start, end - 1, -1) if start > 0 else range(0)
        else:
            end = min(start + count, n - 1)
            order = range(start, end + 1)
        for t in order:
            if t in s.consolidated[COND]:
                fo = s.outputs[COND][t]
            elif t in s.consolidated[NONCOND]:
                fo = s.outputs[NONCOND][t]
            else:
                fo = self._track_frame(s, t, reverse)
                s.outputs[NONCOND][t] = fo
            s.frames_already_tracked[t] = reverse
            yield self._output(s, t, fo)

    @staticmethod
    def post_process_masks(
        masks: Sequence[np.ndarray],
        original_sizes: Sequence[Sequence[int]],
        binarize: bool = True,
        mask_threshold: float = 0.0,
    ) -> list[np.ndarray]:
        """Resize low-res logits (N, 1, 256, 256) to each (H, W) (bilinear); optionally ``> threshold``."""
        return post_process_masks(masks, original_sizes, binarize, mask_threshold)

    def remove_object(self, inference_session: InferenceSession, obj_id: int) -> list[int]:
        """Remove an object and its inputs and results; returns the remaining object ids."""
        return remove_object(inference_session, obj_id)

    def clear_all_prompts_in_frame(
        self, inference_session: InferenceSession, frame_idx: int, obj_id: int
    ) -> None:
        """Remove ``obj_id``'s inputs on ``frame_idx``; a frame left without inputs stops conditioning."""
        clear_prompts_in_frame(inference_session, frame_idx, obj_id)

    # ------------------------------------------------------------------ internals
    def _run(self, s: InferenceSession, graph: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        t0 = time.perf_counter()
        out = self.runtime.run(graph, feeds)
        s.timings[graph].append(time.perf_counter() - t0)
        return out

    def _check_frame_index(self, s: InferenceSession, t: int, held: bool = False) -> None:
        if not isinstance(t, (int, np.integer)) or not 0 <= t < s.num_frames:
            raise IndexError(f"frame index {t} is out of range: the video has {s.num_frames} frames")
        if held and s.streaming and (t >= len(s.frames) or s.frames[t] is None):
            raise IndexError(
                f"frame {t} is no longer held by the streaming session (only the latest frame is)"
            )

    def _check_frame_for_input(self, s: InferenceSession, t: int) -> None:
        if s.streaming:
            if not isinstance(t, (int, np.integer)) or not 0 <= t <= s.num_streamed:
                raise IndexError(
                    f"frame index {t}: a stream at frame {s.num_streamed} takes inputs for frames <= {s.num_streamed}"
                )
            if t < s.num_streamed:
                self._check_frame_index(s, t, held=True)
        else:
            self._check_frame_index(s, t)

    def _points_already_on(self, s: InferenceSession, t: int, obj_id: int, clear_old: bool) -> int:
        n = 0
        if not clear_old and obj_id in s.obj_ids:
            prev = s.point_inputs[s.obj_ids.index(obj_id)].get(t)
            n = 0 if prev is None else len(prev.labels)
        for p in s.pending:
            if p.frame_idx == t and p.obj_id == obj_id:
                if p.points is None or p.clear_old:
                    n = 0
                if p.points is not None:
                    n += len(p.points.labels)
        return n if not clear_old else 0

    def _features(self, s: InferenceSession, t: int) -> dict[str, np.ndarray]:
        cache = s.feature_cache
        if t in cache:
            cache.move_to_end(t)
            return cache[t]
        frame = s.frames[t] if s.frames is not None and t < len(s.frames) else None
        if frame is None:
            raise IndexError(f"frame {t} is not available")
        image = preprocess(to_model_frame(frame))
        feats = self._run(s, "image_encoder", {"image": image})
        cache[t] = feats
        while len(cache) > self.feature_cache_size:
            cache.popitem(last=False)
        return feats

    def _decode(
        self, s, feats, pix, use_no_mem: bool, prompt: PointPrompt | None, mask_in: np.ndarray | None
    ):
        feeds = decoder_feeds(feats, pix, use_no_mem, prompt, mask_in, self.max_points)
        return self._run(s, "prompt_decoder", feeds)

    def _object_entries(self, s: InferenceSession, i: int) -> tuple[dict, dict]:
        def entries(key: str) -> dict[int, MemoryEntry]:
            return {
                t: MemoryEntry(fo.maskmem[i], fo.obj_ptr[i])
                for t, fo in s.outputs[key].items()
                if fo.maskmem is not None
            }

        return entries(COND), entries(NONCOND)

    def _memory_pix(self, s: InferenceSession, t: int, i: int, feats, reverse: bool) -> np.ndarray:
        cond, noncond = self._object_entries(s, i)
        if not cond:
            raise RuntimeError("memory attention needs at least one conditioning frame")
        bank = assemble_bank(
            t,
            cond,
            noncond,
            reverse=reverse,
            num_frames=None if s.streaming else s.num_frames,
            max_cond_frames=self.max_cond_frames,
            num_spatial_slots=self.num_spatial_slots,
            num_ptr_slots=self.num_ptr_slots,
        )
        return self._run(s, "memory_attention", bank.feeds(feats["vis"]))["pix"]

    def _encode_memory(self, s: InferenceSession, feats, low_mask: np.ndarray, binarize: bool) -> np.ndarray:
        out = self._run(s, "memory_encoder", memory_encoder_feeds(feats["vis"], low_mask, binarize))
        return out["mem"][0]

    def _track_frame(self, s: InferenceSession, t: int, reverse: bool) -> FrameOutput:
        """Track every object on an unprompted frame (docs/MODEL.md §3.6)."""
        feats = self._features(s, t)
        n = len(s.obj_ids)
        masks = np.empty((n, 1, LOW_RES, LOW_RES), np.float32)
        ptrs = np.empty((n, 256), np.float32)
        scores = np.empty((n, 1), np.float32)
        mems = np.empty((n, 512, 64), np.float32)
        chosen = np.empty(n, np.int64)
        for i in range(n):
            pix = self._memory_pix(s, t, i, feats, reverse)
            dec = self._decode(s, feats, pix, False, None, None)
            d = decide_outputs(dec, self.no_obj_ptr, multimask=True)
            mems[i] = self._encode_memory(s, feats, d.low_res_mask, binarize=False)
            masks[i] = fill_holes(d.low_res_mask, self.fill_hole_area)
            ptrs[i] = d.ptr
            scores[i] = d.obj_score
            chosen[i] = d.candidate_index
        return FrameOutput(masks, ptrs, scores, mems, chosen)

    def _stream_frame(self, s: InferenceSession, frame: np.ndarray) -> TrackerOutput:
        if not s.streaming:
            raise ValueError("this session holds a whole video: call tracker(session, frame_idx=...) instead")
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB frame, got {frame.dtype} {frame.shape}")
        h, w = frame.shape[:2]
        if s.video_height is not None and (h, w) != (s.video_height, s.video_width):
            raise ValueError(
                f"streamed frame {s.num_streamed} is {w}x{h} but the session's video is "
                f"{s.video_width}x{s.video_height} (width x height): stream frames of one size, "
                "matching original_size"
            )
        if s.video_height is None:
            s.video_height, s.video_width = h, w
        t = s.num_streamed
        s.frames.append(frame)
        s.num_streamed += 1
        if any(p.frame_idx == t for p in s.pending):
            self._apply_pending(s, t)
            self._preflight(s)
            fo = s.outputs[COND].get(t) or s.outputs[NONCOND][t]
        elif s.outputs[COND]:
            fo = self._track_frame(s, t, reverse=False)
            s.outputs[NONCOND][t] = fo
        else:
            n = len(s.obj_ids)
            fo = FrameOutput(
                np.full((n, 1, LOW_RES, LOW_RES), NO_OBJ_SCORE, np.float32),
                np.zeros((n, 256), np.float32),
                np.full((n, 1), -10.0, np.float32),
            )
        s.frames_already_tracked[t] = False
        prune_stream(s, t)
        return self._output(s, t, fo)

    def _output(self, s: InferenceSession, t: int, fo: FrameOutput | None) -> TrackerOutput:
        if fo is None:
            fo = s.outputs[COND].get(t) or s.outputs[NONCOND][t]
        masks = non_overlap(fo.pred_masks) if self.non_overlap_masks else fo.pred_masks
        return TrackerOutput(t, list(s.obj_ids), masks.copy(), fo.object_score_logits.copy())
