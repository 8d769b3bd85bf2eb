"""Backend-agnostic EdgeTAM video tracking with the memory bank held as explicit tensors."""

from .session import InferenceSession
from .tracker import Tracker, TrackerOutput

__all__ = ["InferenceSession", "Tracker", "TrackerOutput"]
