"""Video and image file I/O (PyAV, Pillow): decoding frames, writing videos and PNGs.

Resizing to the model's input size lives in :mod:`edgetam_export.preprocessing`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from .fileio import temp_sibling
from .preprocessing import RESIZE_POLICY, VideoError, to_model_frame  # noqa: F401  (re-exported)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB."""
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, ValueError) as e:
        raise VideoError(f"cannot read image {path}: {e}") from e


def _open_video(path: Path):
    import av

    if not path.is_file():
        raise VideoError(f"video not found: {path}")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as e:
        raise VideoError(f"cannot decode video {path}: {e}") from e
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path} has no video stream")
    return container


def iter_frames(path: str | os.PathLike, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """Decode a video lazily: yields (H, W, 3) uint8 RGB frames one at a time (only one is held)."""
    import av

    path = Path(path)
    container = _open_video(path)
    n = 0
    try:
        with container:
            for frame in container.decode(container.streams.video[0]):
                if max_frames is not None and n >= max_frames:
                    return
                yield frame.to_ndarray(format="rgb24")
                n += 1
    except av.error.FFmpegError as e:
        raise VideoError(f"cannot decode video {path}: {e}") from e
    if n == 0:
        raise VideoError(f"{path} contains no decodable frames")


def video_info(path: str | os.PathLike, max_frames: int | None = None) -> tuple[int, int, int, float]:
    """``(num_frames, height, width, fps)`` of a video, counting frames by decoding (no RGB conversion)."""
    import av

    path = Path(path)
    container = _open_video(path)
    n, h, w = 0, 0, 0
    try:
        with container:
            stream = container.streams.video[0]
            fps = float(stream.average_rate or 30)
            for frame in container.decode(stream):
                if max_frames is not None and n >= max_frames:
                    break
                h, w = frame.height, frame.width
                n += 1
    except av.error.FFmpegError as e:
        raise VideoError(f"cannot decode video {path}: {e}") from e
    if n == 0:
        raise VideoError(f"{path} contains no decodable frames")
    return n, h, w, fps


class LazyVideo(Sequence):
    """A video file as a read-only sequence of (H, W, 3) uint8 RGB frames, decoded on demand.

    Memory is bounded whatever the length: forward access decodes sequentially holding one
    frame; a backward access (``t`` before the decoder) re-decodes from the start the block of
    ``block`` frames ending at ``t`` and holds that block (``block`` x H x W x 3 bytes), so a
    reverse pass costs about ``n / block`` extra sequential decodes of the video.
    """

    def __init__(self, path: str | os.PathLike, max_frames: int | None = None, block: int = 16) -> None:
        self.path = Path(path)
        self.num_frames, self.height, self.width, self.fps = video_info(self.path, max_frames)
        self.block = max(1, int(block))
        self._it: Iterator[np.ndarray] | None = None
        self._next = 0  # index the sequential decoder yields next
        self._held: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return self.num_frames

    def _restart(self) -> None:
        if self._it is not None:
            self._it.close()
        self._it, self._next = iter_frames(self.path, self.num_frames), 0

    def _advance_to(self, t: int, keep_from: int) -> None:
        while self._next <= t:
            frame = next(self._it)
            if self._next >= keep_from:
                self._held[self._next] = frame
            self._next += 1

    def __getitem__(self, t):
        if isinstance(t, slice):
            return [self[i] for i in range(*t.indices(len(self)))]
        t = int(t)
        if t < 0:
            t += len(self)
        if not 0 <= t < len(self):
            raise IndexError(f"frame {t} is out of range: the video has {len(self)} frames")
        if t in self._held:
            return self._held[t]
        if self._it is None or t < self._next:
            # Backward (or first) access: re-decode from the start, keep the block ending at t.
            self._restart()
            self._held.clear()
            self._advance_to(t, keep_from=max(0, t - self.block + 1))
        else:
            self._held.clear()
            self._advance_to(t, keep_from=t)
        return self._held[t]

    @property
    def num_held(self) -> int:
        """Decoded frames currently held in memory."""
        return len(self._held)

    def close(self) -> None:
        """Stop the decoder and drop held frames."""
        if self._it is not None:
            self._it.close()
        self._it, self._next, self._held = None, 0, {}


def read_video(path: str | os.PathLike, max_frames: int | None = None) -> tuple[list[np.ndarray], float]:
    """Decode a whole video file into a list of (H, W, 3) uint8 RGB frames and its frame rate.

    Holds every frame: for long videos use :func:`iter_frames` or :class:`LazyVideo`.
    """
    frames = list(iter_frames(path, max_frames))
    return frames, video_info(path, max_frames=1)[3]


class VideoWriter:
    """Encode (H, W, 3) uint8 RGB frames one at a time to an H.264 (yuv420p) mp4, written atomically.

    Use as a context manager; the file appears (mode 0644) only when the block exits without error.
    """

    def __init__(
        self, path: str | os.PathLike, fps: float = 30.0, options: dict[str, str] | None = None
    ) -> None:
        """``options``: libx264 encoder options, e.g. ``{"preset": "ultrafast"}``."""
        import av

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = str(temp_sibling(self.path, suffix=self.path.suffix or ".mp4"))
        self._container = av.open(self._tmp, mode="w")
        self._fps = fps
        self._options = dict(options or {})
        self._stream = None
        self.frames_written = 0

    def write(self, frame: np.ndarray) -> None:
        """Encode one (H, W, 3) uint8 frame (odd sizes are cropped by one pixel for yuv420p)."""
        import av

        if self._stream is None:
            h, w = frame.shape[:2]
            self._stream = self._container.add_stream(
                "libx264", rate=round(self._fps) or 30, options=self._options
            )
            self._stream.width, self._stream.height = w - w % 2, h - h % 2
            self._stream.pix_fmt = "yuv420p"
        st = self._stream
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[: st.height, : st.width]), "rgb24")
        for packet in st.encode(vf):
            self._container.mux(packet)
        self.frames_written += 1

    def close(self, commit: bool = True) -> None:
        """Flush and rename into place (``commit``), or discard the temporary file."""
        try:
            if commit and self._stream is not None:
                for packet in self._stream.encode():
                    self._container.mux(packet)
            self._container.close()
            if commit:
                os.chmod(self._tmp, 0o644)  # every output is 0644, whatever the umask
                os.replace(self._tmp, self.path)
        finally:
            if os.path.exists(self._tmp):
                os.unlink(self._tmp)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(commit=exc_type is None)


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float = 30.0) -> Path:
    """Encode (H, W, 3) uint8 RGB frames to an H.264 (yuv420p) mp4, written atomically."""
    with VideoWriter(path, fps) as writer:
        for frame in frames:
            writer.write(frame)
    return Path(path)


def write_png(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write a uint8 image (H, W) or (H, W, 3) as PNG, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path, suffix=".png")
    Image.fromarray(image).save(tmp, format="PNG")
    os.replace(tmp, path)
    return path
