"""Array type aliases shared by the package.

Shapes and units are stated in each docstring; these aliases only say
"a float array" so signatures stay short.
"""

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
Points = NDArray[np.float64]  # (n, 3) float, mm
Vector = NDArray[np.float64]  # (3,) float
Transform = NDArray[np.float64]  # (4, 4) float, homogeneous, tf_<to>_<from>
Side = Literal["left", "right"]

__all__ = ["ArrayLike", "FloatArray", "Points", "Side", "Transform", "Vector"]
