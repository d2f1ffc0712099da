"""Command line: `python -m codegen [--check] [--spec PATH] [--root DIR]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from codegen.render import GENERATED_DIRS, REPO_ROOT, RenderError, contract, generate
from codegen.spec import SpecError, load


def _shown(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def drift(root: Path, outputs: dict[Path, str]) -> list[str]:
    """Files under `root` that differ from `outputs`, plus stale generated files."""
    changed = []
    for rel, text in sorted(outputs.items()):
        path = root / rel
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current != text:
            changed.append(
                f"{rel.as_posix()} ({'differs' if current is not None else 'missing'})"
            )
    for folder in GENERATED_DIRS:
        for path in sorted((root / folder).rglob("*")):
            rel = path.relative_to(root)
            if path.is_file() and "__pycache__" not in rel.parts and rel not in outputs:
                changed.append(f"{rel.as_posix()} (stale: no template produces it)")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m codegen", description=__doc__)
    parser.add_argument(
        "--check", action="store_true", help="fail if regenerating would change files"
    )
    parser.add_argument(
        "--contract",
        action="store_true",
        help="print what the hand-written base classes must implement, then exit",
    )
    parser.add_argument(
        "--spec", type=Path, help="spec file (default: <root>/spec/api.yaml)"
    )
    parser.add_argument(
        "--root", type=Path, default=REPO_ROOT, help="repository root to write into"
    )
    args = parser.parse_args(argv)
    root: Path = args.root
    spec_path: Path = args.spec or root / "spec" / "api.yaml"
    try:
        spec = load(spec_path, _shown(spec_path, root))
        if args.contract:
            print(contract(spec), end="")
            return 0
        outputs = generate(spec)
    except (SpecError, RenderError) as exc:
        print(f"codegen: {exc}", file=sys.stderr)
        return 2
    if args.check:
        changed = drift(root, outputs)
        if changed:
            print(
                "codegen: generated files are out of date with the spec:",
                file=sys.stderr,
            )
            for line in changed:
                print(f"  {line}", file=sys.stderr)
            print(
                "Regenerate with `nox -s codegen` (python -m codegen).", file=sys.stderr
            )
            return 1
        print(f"codegen: {len(outputs)} generated files are up to date.")
        return 0
    written = 0
    for rel, text in sorted(outputs.items()):
        path = root / rel
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"codegen: wrote {rel.as_posix()}")
        written += 1
    stale = [
        c
        for c in drift(root, outputs)
        if c.endswith("(stale: no template produces it)")
    ]
    for line in stale:
        print(f"codegen: warning: {line}", file=sys.stderr)
    print(f"codegen: {written} of {len(outputs)} files changed.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
