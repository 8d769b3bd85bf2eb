"""fileio: stale temporaries of our own are cleaned, nothing else is."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from edgetam_export.cli.options import prepare_out
from edgetam_export.fileio import clean_stale_temps, temp_sibling


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_clean_stale_temps_only_ours_and_only_stale(tmp_path):
    dead, live = _dead_pid(), os.getppid()
    old = time.time() - 2 * 86400
    names = {
        f".bundle.tmp-p{dead}-0123abcd": True,  # creator gone
        f".bundle.old-p{dead}-0123abce": True,
        ".bundle.tmp-89abcdef": True,  # no PID, two days old
        ".bundle.tmp-89abcde0": False,  # no PID, fresh
        f".bundle.tmp-p{live}-0123abcf": False,  # creator still running
        f".other.tmp-p{dead}-0123abc0": False,  # another target (name filter)
        ".bundle.tmp-notours": False,  # not our pattern
        "bundle": False,
    }
    for name in names:
        (tmp_path / name).mkdir()
        (tmp_path / name / "f.bin").write_bytes(b"x")
    os.utime(tmp_path / ".bundle.tmp-89abcdef", (old, old))
    removed = clean_stale_temps(tmp_path, name="bundle")
    assert sorted(p.name for p in removed) == sorted(n for n, gone in names.items() if gone)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(n for n, gone in names.items() if not gone)
    # Our own live temporaries carry our PID and are never removed.
    mine = temp_sibling(tmp_path / "bundle")
    mine.mkdir()
    assert clean_stale_temps(tmp_path) == [tmp_path / f".other.tmp-p{dead}-0123abc0"] and mine.exists()


def test_prepare_out_ignores_a_killed_runs_temporaries(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    stale = out / f".summary.json.tmp-p{_dead_pid()}-0123abcd"
    stale.write_text("{}")
    prepare_out(out, overwrite=False)  # not "non-empty": the stale temporary is removed
    assert not stale.exists()
