"""Import stub (oracle venv only): timm/sam2 import torchvision names at load; the oracle never calls them."""

import enum
import importlib.abc
import importlib.machinery
import sys
import types

__version__ = "0.0-stub"


class InterpolationMode(enum.Enum):
    NEAREST = "nearest"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


class _Dummy:
    def __init__(self, *a, **k):
        raise RuntimeError("torchvision stub: not available")


def _getattr(name):
    if name.startswith("__"):
        raise AttributeError(name)
    if name == "InterpolationMode":
        return InterpolationMode
    return type(name, (_Dummy,), {})


__getattr__ = _getattr


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path, target=None):
        if fullname.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        m = types.ModuleType(spec.name)
        m.__path__ = []
        m.__getattr__ = _getattr
        return m

    def exec_module(self, module):
        pass


sys.meta_path.insert(0, _Finder())
