"""The Android driver (edgetam_export.bench.device_android) against a stand-in adb that runs
push/shell/pull locally, with the x86-64 edgetam_bench playing the device's runner."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import jsonschema
import pytest

from edgetam_export.bench.device_android import REMOTE_ROOT, DeviceRunError, run_on_device

from .conftest import REPO

SCHEMA = json.loads((REPO / "benchmarks" / "schema" / "result.v1.schema.json").read_text())
PROPS = {
    "ro.product.model": "Pixel 8",
    "ro.build.version.release": "15",
    "ro.soc.model": "Tensor G3",
    "ro.product.cpu.abi": "arm64-v8a",
}


@pytest.fixture
def fake_adb(tmp_path, monkeypatch) -> Path:
    """``adb`` on PATH = tests/android_harness/fake_adb.py; returns the fake device root."""
    bin_dir, device = tmp_path / "bin", tmp_path / "device"
    bin_dir.mkdir()
    (device / REMOTE_ROOT.lstrip("/")).parent.mkdir(parents=True)
    adb = bin_dir / "adb"
    adb.write_text(f'#!/bin/sh\nexec {sys.executable} {Path(__file__).parent / "fake_adb.py"} "$@"\n')
    adb.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_ADB_ROOT", str(device))
    monkeypatch.setenv("FAKE_ADB_SERIAL", "emulator-5554")
    monkeypatch.setenv("FAKE_ADB_PROPS", json.dumps(PROPS))
    return device


def test_push_run_pull(fake_adb, bench_pack, host_bench, tmp_path):
    out = tmp_path / "result.json"
    run = run_on_device(
        bench_pack,
        out,
        "emulator-5554",
        binary=host_bench,
        threads=1,
        taskset="1",
        iterations=1,
        warmup=0,
        frames="prompted_1obj",
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(out.read_text())
    assert result == run.result
    jsonschema.validate(result, SCHEMA)
    assert result["passed"] is True
    assert result["device"]["model"] == "Pixel 8"
    assert result["device"]["chipset"] == "Tensor G3"
    assert result["device"]["os"].startswith("Android 15")
    assert "getprop ro.product.cpu.abi=arm64-v8a" in result["notes"]
    assert result["setting"]["threads"] == 1
    remote = fake_adb / REMOTE_ROOT.lstrip("/")
    assert (remote / "bin" / "edgetam_bench").is_file()
    assert (remote / "lib" / "libexecutorch.so").is_file()
    assert (remote / "pack" / "index.json").is_file()
    log = [json.loads(line) for line in (fake_adb / "adb.log").read_text().splitlines()]
    shell = [a for a in log if a[2] == "shell" and "edgetam_bench --pack" in a[3]]
    assert len(shell) == 1 and "taskset 1 " in shell[0][3] and "--threads 1" in shell[0][3]


def test_device_errors(fake_adb, bench_pack, host_bench, tmp_path):
    with pytest.raises(DeviceRunError, match="not found"):
        run_on_device(bench_pack, tmp_path / "r.json", "no-such-serial", binary=host_bench)
    with pytest.raises(DeviceRunError, match="no edgetam_bench binary"):
        run_on_device(bench_pack, tmp_path / "r.json", "emulator-5554", binary=tmp_path / "nope")
    with pytest.raises(DeviceRunError, match="not a bench pack"):
        run_on_device(tmp_path, tmp_path / "r.json", "emulator-5554", binary=host_bench)
    with pytest.raises(DeviceRunError, match="hex CPU mask"):
        run_on_device(bench_pack, tmp_path / "r.json", "emulator-5554", binary=host_bench, taskset="big")
    # A runner error on the device comes back as one line.
    with pytest.raises(DeviceRunError, match="edgetam_bench on emulator-5554 failed: edgetam_bench: error: "):
        run_on_device(bench_pack, tmp_path / "r.json", "emulator-5554", binary=host_bench, iterations=0)
    assert not (tmp_path / "r.json").exists()


def test_cli_hook(fake_adb, bench_pack, host_bench, tmp_path):
    from typer.testing import CliRunner

    from edgetam_export.cli import app

    out = tmp_path / "r.json"
    res = CliRunner().invoke(
        app,
        [
            "bench",
            "device",
            "--adb",
            "emulator-5554",
            str(bench_pack),
            "--out",
            str(out),
            "--binary",
            str(host_bench),
            "--iterations",
            "1",
            "--warmup",
            "0",
            "--frames",
            "none",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "numerics: passed" in res.output
    res = CliRunner().invoke(
        app,
        ["device", "--adb", "emulator-5554", str(tmp_path), "--out", str(out), "--binary", str(host_bench)],
    )
    assert res.exit_code == 2
