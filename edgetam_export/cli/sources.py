"""What track and segment share: the weights/bundle options, choosing the runtime, parsing clicks, prompt warnings."""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape

from ..models.constants import GRAPH_NAMES
from ..tracker.prompts import validate_points
from .options import Backend, OnnxFormat, Precision

console = Console(stderr=True, soft_wrap=True)  # never hard-wrap: messages are read and grepped whole

# Options shared by track and segment (one definition each).
CHECKPOINT_OPTION = typer.Option(
    None, "--checkpoint", help="Official edgetam.pt (default: synthetic weights)."
)
BUNDLE_OPTION = typer.Option(
    None, "--bundle", help="Run an exported bundle instead of the PyTorch reference."
)
BACKEND_OPTION = typer.Option(
    None, "--backend", help="Backend inside a bundle (default: the host's preferred one)."
)
PRECISION_OPTION = typer.Option(
    None, "--precision", help="Precision inside a bundle (default: fp32 on CPU hosts)."
)
THREADS_OPTION = typer.Option(
    None, "--threads", min=1, help="CPU threads (ONNX Runtime / ExecuTorch / PyTorch)."
)
ONNX_FORMAT_OPTION = typer.Option(
    None,
    "--onnx-format",
    help="ONNX bundles: run the .onnx files (onnx, the default) or their ORT-format .ort companions (ort).",
)
EXPECT_DIGEST_OPTION = typer.Option(
    None, "--expect-digest", help="Refuse the bundle unless its digest is this sha256:<hex>."
)
OVERWRITE_OPTION = typer.Option(False, "--overwrite", help="Replace the contents of a non-empty --out.")


def choose_runtime(
    checkpoint: Path | None,
    bundle: Path | None,
    backend: Backend | None,
    precision: Precision | None = None,
    threads: int | None = None,
    graphs: tuple[str, ...] = GRAPH_NAMES,
    expect_digest: str | None = None,
    onnx_format: OnnxFormat | None = None,
):
    """Build the runtime: an exported bundle, a checkpoint on the PyTorch reference, or synthetic weights.

    Returns ``(runtime, provenance)``: provenance holds ``weights`` (one line),
    ``weights_provenance`` (synthetic + salt, or checkpoint path + sha256) and, for a bundle,
    ``bundle_digest`` (and ``onnx_format`` when it runs ONNX); it goes into summary.json.
    ``onnx_format`` (``--onnx-format``) is the ONNX runtime's ``model_format``.
    """
    if expect_digest is not None and bundle is None:
        raise typer.BadParameter("--expect-digest pins a bundle: add --bundle")
    if onnx_format is not None and bundle is None:
        raise typer.BadParameter("--onnx-format chooses among a bundle's ONNX files: add --bundle")
    if bundle is not None and checkpoint is not None:
        raise typer.BadParameter("give --checkpoint or --bundle, not both")
    if bundle is None and (backend is not None or precision is not None):
        raise typer.BadParameter("--backend and --precision choose among a bundle's artifacts: add --bundle")
    if bundle is not None:
        from ..bundle import load_bundle
        from ..runtime.loader import runtime_from_bundle

        b = load_bundle(bundle)
        b.check_digest(expect_digest)
        w = b.weights
        if w.get("source") == "synthetic":
            _warn_synthetic(f"bundle {bundle} was exported from SYNTHETIC weights (salt {w.get('salt')})")
        chosen = b.select(backend.value if backend else None, precision.value if precision else None)
        b.require_graphs(*chosen, graphs=graphs)
        if backend is None or precision is None:
            console.print(
                f"using {chosen[0]} {chosen[1]} from {bundle} "
                f"(default for this host among {', '.join(f'{k} {v}' for k, v in _choices(b).items())}; "
                "choose with --backend/--precision)",
                markup=False,
            )
        kwargs = {"num_threads": threads} if threads and chosen[0] in ("onnx", "executorch") else {}
        provenance = {
            "weights": f"bundle {bundle} ({_weights_short(w)})",
            "weights_provenance": w,
            "bundle_digest": b.digest,
        }
        if onnx_format is not None and chosen[0] != "onnx":
            raise typer.BadParameter(
                f"applies to the onnx backend, and this run uses {chosen[0]} (add --backend onnx)",
                param_hint="--onnx-format",
            )
        if chosen[0] == "onnx":
            kwargs["model_format"] = provenance["onnx_format"] = (onnx_format or OnnxFormat.onnx).value
        return runtime_from_bundle(b, backend=chosen[0], precision=chosen[1], **kwargs), provenance
    from ..models import build_edgetam
    from ..runtime.torch_runtime import TorchRuntime

    if threads:
        import torch

        torch.set_num_threads(threads)

    if checkpoint is None:
        _warn_synthetic("no --checkpoint given: using SYNTHETIC weights (salt 0)")
        w = {"source": "synthetic", "salt": 0}
        return TorchRuntime(build_edgetam(None)), {
            "weights": "synthetic weights (salt 0)",
            "weights_provenance": w,
        }
    from ..fileio import file_sha256

    runtime = TorchRuntime(build_edgetam(str(checkpoint)))
    w = {"source": "checkpoint", "path": str(checkpoint.resolve()), "sha256": file_sha256(checkpoint)}
    return runtime, {"weights": f"checkpoint {checkpoint}", "weights_provenance": w}


def _warn_synthetic(what: str) -> None:
    console.print(
        f"[bold yellow]WARNING: {escape(what)}. Masks are numerically meaningful but semantically "
        "random; use the official checkpoint (--checkpoint edgetam.pt, or a bundle exported from it).[/]"
    )


def _weights_short(w: dict) -> str:
    if w.get("source") == "synthetic":
        return f"SYNTHETIC weights, salt {w.get('salt')}"
    return f"checkpoint sha256 {str(w.get('sha256', '?'))[:16]}"


def _choices(b) -> dict[str, list[str]]:
    return {k: b.precisions(k) for k in b.backends}


def parse_floats(text: str, n: tuple[int, ...], what: str) -> list[float]:
    try:
        vals = [float(v) for v in text.split(",")]
    except ValueError:
        raise typer.BadParameter(f"{what} {text!r}: expected comma-separated numbers") from None
    if len(vals) not in n or not all(np.isfinite(vals)):
        raise typer.BadParameter(f"{what} {text!r}: expected {' or '.join(map(str, n))} finite numbers")
    return vals


def parse_point(text: str) -> tuple[list[float], int]:
    """``X,Y[,LABEL]`` -> ([x, y], label), checked by the one prompt validation the tracker uses."""
    parts = text.split(",")
    if len(parts) not in (2, 3):
        raise typer.BadParameter(f"--point {text!r}: expected X,Y or X,Y,LABEL")
    xy = parse_floats(",".join(parts[:2]), (2,), "--point")
    label = 1
    if len(parts) == 3:
        try:
            label = int(parts[2].strip())
        except ValueError:
            raise typer.BadParameter(
                f"--point {text!r}: the label must be 0 (negative) or 1 (positive), got {parts[2]!r}"
            ) from None
    try:
        validate_points([xy], [label], what=f"--point {text!r}")
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    return xy, label


@contextlib.contextmanager
def prompt_warnings_as_lines():
    """Show the library's prompt warnings (points outside the image) as one terminal line each."""
    from ..tracker.prompts import PromptWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PromptWarning)
        yield
    for w in caught:
        if issubclass(w.category, PromptWarning):
            console.print(f"[bold yellow]warning:[/] {escape(str(w.message))}", soft_wrap=True)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
