#!/usr/bin/env python3
"""Stand-in ``adb`` for tests: runs push/pull/shell locally under $FAKE_ADB_ROOT, which plays
the device's file system (``/data/local/tmp/x`` is ``$FAKE_ADB_ROOT/data/local/tmp/x``).

Environment: FAKE_ADB_ROOT (device root), FAKE_ADB_SERIAL (the one attached serial),
FAKE_ADB_PROPS (JSON {prop: value} answered by ``getprop``). Exit codes follow adb with
shell protocol v2: ``shell`` returns the remote command's status.
Every invocation is appended to $FAKE_ADB_ROOT/adb.log.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(os.environ["FAKE_ADB_ROOT"])


def local(remote: str) -> Path:
    if not remote.startswith("/"):
        raise SystemExit(f"adb: error: remote path must be absolute: {remote}")
    return ROOT / remote.lstrip("/")


def push(src: str, dst: str) -> int:
    s, d = Path(src), local(dst)
    if not s.exists():
        print(f"adb: error: cannot stat '{src}': No such file or directory", file=sys.stderr)
        return 1
    if d.is_dir():  # adb pushes into an existing directory
        d = d / s.name
    d.parent.mkdir(parents=True, exist_ok=True)
    if s.is_dir():
        shutil.copytree(s, d)
    else:
        shutil.copy2(s, d)
    print(f"{src}: 1 file pushed.")
    return 0


def pull(src: str, dst: str) -> int:
    s = local(src)
    if not s.exists():
        print(f"adb: error: failed to stat remote object '{src}': No such file or directory", file=sys.stderr)
        return 1
    shutil.copy2(s, dst)
    return 0


def shell(args: list[str]) -> int:
    command = " ".join(args)  # adb joins shell arguments with spaces
    bin_dir = ROOT / "system" / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    getprop = bin_dir / "getprop"
    if not getprop.exists():
        getprop.write_text(
            "#!/bin/sh\n"
            f'exec {sys.executable} -c \'import json, os, sys; print(json.loads(os.environ.get("FAKE_ADB_PROPS", "{{}}")).get(sys.argv[1], ""))\' "$1"\n'
        )
        getprop.chmod(0o755)
    command = command.replace("/data/", f"{ROOT}/data/")
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ.get('PATH', '')}")
    return subprocess.run(["sh", "-c", command], cwd=ROOT, env=env).returncode


def main(argv: list[str]) -> int:
    with open(ROOT / "adb.log", "a") as log:
        log.write(json.dumps(argv) + "\n")
    if len(argv) >= 2 and argv[0] == "-s":
        if argv[1] != os.environ.get("FAKE_ADB_SERIAL"):
            print(f"adb: device '{argv[1]}' not found", file=sys.stderr)
            return 1
        argv = argv[2:]
    if not argv:
        return 1
    cmd, rest = argv[0], argv[1:]
    if cmd == "push" and len(rest) == 2:
        return push(*rest)
    if cmd == "pull" and len(rest) == 2:
        return pull(*rest)
    if cmd == "shell":
        return shell(rest)
    print(f"adb: unknown command {cmd}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
