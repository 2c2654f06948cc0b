"""Fails when a tracked file (other than documentation) refers to a path outside the repository.

A user clones only this repository: nothing in the build, the tests, the demo or the benchmarks may read a file
beside it (such as the development checkout's shared folder next to the repository). Every relative path literal with `../` is resolved
from the repository root and from the file's own folder; it must stay inside the repository from both. Absolute
paths into home or work folders are refused too. Run by `make lint`.
"""
from __future__ import annotations

import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Documentation may talk about the world outside; this checker names the patterns it refuses.
SKIP_SUFFIXES = {".md", ".lock"}
SKIP_FILES = {"tools/check_self_contained.py"}
# A run of ../ followed by a name: ../x/y, ../../y. A bare ".." or "../.." (the parent of a known folder, e.g.
# a crate's manifest folder) names no file and is not matched.
RELATIVE = re.compile(r"(?<![\w.])((?:\.\./)+)([A-Za-z0-9_\-][\w\-./]*)")
ABSOLUTE = re.compile(r"(?<![\w.])(/work/|/home/|/root/|/Users/)[\w\-./]*")


def escapes(base: pathlib.Path, ups: str, rest: str) -> bool:
    target = (base / ups / rest).resolve()
    return ROOT != target and ROOT not in target.parents


def problems(path: str) -> list[str]:
    file = ROOT / path
    try:
        text = file.read_text(encoding="utf-8")
    except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
        return []
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for m in RELATIVE.finditer(line):
            ups, rest = m.group(1), m.group(2)
            # Tests and tools resolve paths from the root or from their own folder: inside from both, or refused.
            # Cargo resolves a manifest's paths, and rustc a `#[path]` attribute, from the file's folder only
            # (fuzz/Cargo.toml -> ../crates, tests/bad_input.rs -> ../crates/keyguard-core/tests/inputs), and so do
            # `include_str!`/`include_bytes!` (keyguard-aws/src/tls.rs -> ../certs).
            folder_only = file.name == "Cargo.toml" or any(m in line for m in ("#[path", "include_str!", "include_bytes!"))
            from_root = not folder_only and escapes(ROOT, ups, rest)
            if from_root or escapes(file.parent, ups, rest):
                found.append(f"{path}:{number}: {m.group(0)!r} is outside the repository")
        for m in ABSOLUTE.finditer(line):
            found.append(f"{path}:{number}: {m.group(0)!r} is an absolute path outside the repository")
    return found


def main() -> int:
    tracked = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout.split()
    found = []
    for path in tracked:
        if pathlib.PurePath(path).suffix in SKIP_SUFFIXES or path in SKIP_FILES:
            continue
        found.extend(problems(path))
    for line in found:
        print(line, file=sys.stderr)
    if found:
        print(f"{len(found)} reference(s) to paths outside the repository (a clone has nothing beside it)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
