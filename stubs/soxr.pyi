# Types for the part of python-soxr the daemon uses (it ships none).
from typing import Literal

import numpy as np
import numpy.typing as npt

_Quality = Literal["QQ", "LQ", "MQ", "HQ", "VHQ"]

class ResampleStream:
    def __init__(
        self,
        in_rate: float,
        out_rate: float,
        num_channels: int,
        dtype: Literal["int16"] = ...,
        quality: _Quality = ...,
        vr: bool = ...,
    ) -> None: ...
    def resample_chunk(
        self, x: npt.NDArray[np.int16], last: bool = ...
    ) -> npt.NDArray[np.int16]: ...
    def clear(self) -> None: ...
    def delay(self) -> float: ...

def resample(
    x: npt.NDArray[np.int16], in_rate: float, out_rate: float, quality: _Quality = ...
) -> npt.NDArray[np.int16]: ...
