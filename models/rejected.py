"""Where the model store keeps models the promotion gate rejected: ``models_dir/rejected/``.

A rejected model is never published as a version ``vNNNNNN`` (so nothing that
loads versions can ever trade it); its staging folder is renamed, whole, to
``rejected/<SYMBOL>-<trained_at_ms>/`` for an operator to inspect (its manifest
holds the walk-forward figures). Only the newest ``KEEP_PER_SYMBOL`` are kept
per symbol: a symbol without an edge is retried every day, and a year of its
rejections would otherwise pile up.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from core.durable import fsync_dir

REJECTED = "rejected"
KEEP_PER_SYMBOL = 5
_UNSAFE = re.compile(r"[^A-Za-z0-9._]+")


def folder_prefix(symbol: str) -> str:
    """`BTC/USDT` -> `BTC-USDT-`: a file-name-safe prefix of that symbol's folders."""
    return _UNSAFE.sub("-", symbol).strip("-") + "-"


def keep(models_dir: str | Path, staging_dir: str | Path, symbol: str, trained_at_ms: int) -> Path:
    """Move a staging folder to ``rejected/`` and prune that symbol's oldest; raises OSError."""
    root = Path(models_dir) / REJECTED
    root.mkdir(parents=True, exist_ok=True)
    base = f"{folder_prefix(symbol)}{int(trained_at_ms)}"
    target, n = root / base, 1
    while target.exists():  # the same job time twice (a clock set back): keep both
        n += 1
        target = root / f"{base}.{n}"
    os.rename(staging_dir, target)
    fsync_dir(root)
    prune(root, symbol)
    return target


def kept(models_dir: str | Path, symbol: str) -> list[Path]:
    """The symbol's rejected model folders, oldest first."""
    root = Path(models_dir) / REJECTED
    prefix = folder_prefix(symbol)
    try:
        names = [e.name for e in os.scandir(root) if e.is_dir() and e.name.startswith(prefix)]
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        stamp, _, copy = name.removeprefix(prefix).partition(".")
        if stamp.isdigit() and (not copy or copy.isdigit()):
            found.append(((int(stamp), int(copy or 1)), root / name))
    return [path for _, path in sorted(found)]


def gate_refusal(folder: str | Path) -> str | None:
    """Why the manifest in `folder` says the promotion gate rejected its model; None if it
    does not say so (no `gate` object, as before the gate existed, means promoted).

    Read as plain JSON so that it works whatever else the manifest format holds.
    """
    try:
        manifest = json.loads((Path(folder) / "manifest.json").read_bytes())
    except (OSError, ValueError):
        return None  # publishing reads the manifest properly and names that problem
    gate = manifest.get("gate") if isinstance(manifest, dict) else None
    if not isinstance(gate, dict) or gate.get("promoted", True) is not False:
        return None
    reasons = gate.get("reasons") or []
    return "; ".join(str(r) for r in reasons) or "no reason given"


def prune(root: Path, symbol: str) -> None:
    for old in kept(root.parent, symbol)[:-KEEP_PER_SYMBOL]:
        shutil.rmtree(old, ignore_errors=True)
