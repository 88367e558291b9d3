"""Rows <-> msgspec Structs: a Struct's fields are its table's columns, in order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec


def columns(struct: type[msgspec.Struct]) -> str:
    return ", ".join(struct.__struct_fields__)


def placeholders(struct: type[msgspec.Struct]) -> str:
    return ", ".join("?" for _ in struct.__struct_fields__)


def from_row(struct: type[Any], row: Sequence[Any]) -> Any:
    return msgspec.convert(dict(zip(struct.__struct_fields__, row, strict=True)), struct)


def values(item: msgspec.Struct) -> tuple[Any, ...]:
    return tuple(
        str(v) if isinstance(v, str) else v  # StrEnum members as plain text
        for v in msgspec.structs.astuple(item)
    )
