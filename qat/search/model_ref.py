"""A picklable reference to a framework model handed to search jobs (see qat.search.frameworks)."""
from __future__ import annotations

from dataclasses import dataclass

from qat.search.cache import content_key


@dataclass(frozen=True)
class ModelRef:
    framework: str  # 'qkeras' or 'brevitas'
    payload: bytes  # .h5 bytes, or the state_dict (torch.save) for brevitas
    source: str = ""  # brevitas: the Python file's text
    name: str = ""  # brevitas: NAME in file.py:NAME
    input_shape: tuple[int, ...] = ()  # brevitas: one input without the batch axis

    @property
    def key(self) -> str:
        return content_key(self.framework, self.payload, self.source, self.name, list(self.input_shape))
