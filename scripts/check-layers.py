#!/usr/bin/env python3
"""Fail when a module of the engine imports a module above it.

The host crate is layered, leaves first (see host/src/lib.rs):

    clock, cow, outage, testing, event, time, window
                                               (leaves: no crate imports
                                                between them but cow)
    config
    plugin
    state, sink, source
    engine
    api
    pipeline
    cli                                          (only main.rs and bin
                                                  targets sit above it)

A module may use any module of a lower layer, and a module of its own layer
only where ALLOWED_SAME says so. Every `crate::x` path in a file under
host/src/<x>/ or host/src/<x>.rs counts, in code and doc links alike.
"""
import pathlib
import re
import sys

LAYERS = [
    ["clock", "cow", "outage", "testing", "event", "time", "window"],
    ["config"],
    ["plugin"],
    ["state", "sink", "source"],
    ["engine"],
    ["api"],
    ["pipeline"],
    ["cli"],
]
# Imports inside one layer that are allowed (from, to).
ALLOWED_SAME = {("window", "cow")}

RANK = {m: i for i, layer in enumerate(LAYERS) for m in layer}
SRC = pathlib.Path(__file__).resolve().parent.parent / "host" / "src"
USE = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")


def module_of(path: pathlib.Path) -> str | None:
    rel = path.relative_to(SRC)
    top = rel.parts[0]
    if top in ("main.rs", "lib.rs"):
        return None  # the crate root and the binary know every stage
    return top[:-3] if top.endswith(".rs") else top


def main() -> int:
    bad = []
    unknown = set()
    for path in sorted(SRC.rglob("*.rs")):
        me = module_of(path)
        if me is None:
            continue
        if me not in RANK:
            unknown.add(me)
            continue
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            for target in USE.findall(line):
                if target == me or target not in RANK:
                    continue
                up = RANK[target] > RANK[me]
                sideways = RANK[target] == RANK[me] and (me, target) not in ALLOWED_SAME
                if up or sideways:
                    kind = "up" if up else "sideways"
                    bad.append(f"{path.relative_to(SRC.parent.parent)}:{lineno}: {me} -> {target} ({kind}): {line.strip()}")
    for m in sorted(unknown):
        bad.append(f"host/src/{m}: a module this check does not know: give it a layer in scripts/check-layers.py")
    if bad:
        print("imports that do not point down (layers in scripts/check-layers.py):")
        print("\n".join(bad))
        return 1
    print(f"layers: ok ({sum(1 for _ in SRC.rglob('*.rs'))} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
