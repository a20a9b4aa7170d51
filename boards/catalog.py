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
    luts: int | None = None  # the part's LUTs (None: no fixed capacity, e.g. the ASIC target)
    ffs: int | None = None
    dsps: int | None = None
    bram36: int | None = None  # 36 Kb block RAMs

    @property
    def is_asic(self) -> bool:
        return self.yosys_family is None


def fit_problem(b: Board, estimated_luts: int, what: str, multipliers: int = 0) -> str | None:
    """One line when ``estimated_luts`` (a prediction made before synthesis) exceed the board's LUTs, or
    the design's general ``multipliers`` (one DSP48 each) its DSPs."""
    if b.dsps is not None and multipliers > b.dsps:
        return (f"{what}: {multipliers:,} multipliers (--fold dsp) need {multipliers:,} DSP48 slices, over the "
                f"{b.dsps:,} of {b.name} ({b.part}); fold further (a larger --reuse), use --fold digits, or pass "
                f"--no-fit-check to synthesize anyway")
    if b.luts is None or estimated_luts <= b.luts:
        return None
    return (f"{what}: the constant arithmetic alone is estimated at ~{estimated_luts:,} LUTs, over the "
            f"{b.luts:,} LUTs of {b.name} ({b.part}); fold it (--reuse N, or per layer --reuse fc1=4,...) or stream "
            f"it (--io stream), or pass --no-fit-check to synthesize anyway")


def boards() -> dict[str, Board]:
    doc = json.loads(DATA.read_text())
    return {name: Board(name, **spec) for name, spec in doc["boards"].items()}


def board(name: str) -> Board:
    all_boards = boards()
    if name not in all_boards:
        raise ValueError(f"unknown board {name!r} (known: {', '.join(sorted(all_boards))})")
    return all_boards[name]
