"""Parts and boards qrtl targets (data in boards/boards.json)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).with_name("boards.json")


@dataclass(frozen=True)
class Board:
    name: str
    description: str
    part: str
    family: str
    yosys_family: str | None  # synth_xilinx -family; None for the generic ASIC target
    speed_grade: str | None
    clock_mhz: float

    @property
    def is_asic(self) -> bool:
        return self.yosys_family is None


def boards() -> dict[str, Board]:
    doc = json.loads(DATA.read_text())
    return {name: Board(name, **spec) for name, spec in doc["boards"].items()}


def board(name: str) -> Board:
    all_boards = boards()
    if name not in all_boards:
        raise ValueError(f"unknown board {name!r} (known: {', '.join(sorted(all_boards))})")
    return all_boards[name]
