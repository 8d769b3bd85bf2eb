"""Video and image file I/O (PyAV, Pillow): decoding frames, writing videos and PNGs.

Resizing to the model's input size lives in :mod:`edgetam_export.preprocessing`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from .preprocessing import RESIZE_POLICY, VideoError, to_model_frame  # noqa: F401  (re-exported)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB."""
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, ValueError) as e:
        raise VideoError(f"cannot read image {path}: {e}") from e


def read_video(path: str | os.PathLike, max_frames: int | None = None) -> tuple[list[np.ndarray], float]:
    """Decode a video file into a list of (H, W, 3) uint8 RGB frames and its frame rate."""
    import av

    path = Path(path)
    if not path.is_file():
        raise VideoError(f"video not found: {path}")
    frames: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError(f"{path} has no video stream")
            stream = container.streams.video[0]
            fps = float(stream.average_rate or 30)
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format="rgb24"))
                if max_frames is not None and len(frames) >= max_frames:
                    break
    except av.error.FFmpegError as e:
        raise VideoError(f"cannot decode video {path}: {e}") from e
    if not frames:
        raise VideoError(f"{path} contains no decodable frames")
    return frames, fps


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float = 30.0) -> Path:
    """Encode (H, W, 3) uint8 RGB frames to an H.264 (yuv420p) mp4, written atomically."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=path.suffix or ".mp4", dir=path.parent, prefix=".tmp-")
    os.close(fd)
    try:
        with av.open(tmp, mode="w") as container:
            stream = None
            for frame in frames:
                h, w = frame.shape[:2]
                if stream is None:
                    stream = container.add_stream("libx264", rate=round(fps) or 30)
                    stream.width, stream.height = w - w % 2, h - h % 2
                    stream.pix_fmt = "yuv420p"
                vf = av.VideoFrame.from_ndarray(
                    np.ascontiguousarray(frame[: stream.height, : stream.width]), "rgb24"
                )
                for packet in stream.encode(vf):
                    container.mux(packet)
            if stream is not None:
                for packet in stream.encode():
                    container.mux(packet)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; every output is 0644
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_png(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write a uint8 image (H, W) or (H, W, 3) as PNG, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    Image.fromarray(image).save(tmp, format="PNG")
    os.replace(tmp, path)
    return path
