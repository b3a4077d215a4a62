"""Bootstrap resampling by Poisson weights: every row gets a weight drawn from Poisson(1).

A resample of n rows drawn with replacement gives each row a Binomial(n, 1/n) count, which is
Poisson(1) in the limit; drawing the weights independently (the Poisson bootstrap) needs no
index arrays and no counting, works on data streamed in chunks, and gives two models the
same resample simply by applying the same weights to both (the paired bootstrap). Weights are
drawn through a 16-bit table of the Poisson(1) distribution, so each probability is exact to
1/65536.

``weights(seed, n, resamples)`` is the public contract: for a fixed seed the same rows get the
same weights, chunk after chunk, so anyone can reproduce a loopml interval with a plain loop.
Resample ``i`` draws from NumPy's PCG64 seeded with ``SeedSequence(seed, spawn_key=(i,))``:
its raw 64-bit output cut into 16-bit pieces, four per word, one per row.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

TABLE_BITS = 16
CHUNK = 8  # resamples drawn together: 8 x 1M uint8 weights is 8 MB


def _poisson_table() -> np.ndarray:
    """Poisson(1) values for each of the 2**16 equally likely 16-bit draws."""
    size = 1 << TABLE_BITS
    cdf, k, probability, bounds = 0.0, 0, math.exp(-1.0), []
    while cdf < 1.0 - 0.5 / size:
        cdf += probability
        bounds.append(round(cdf * size))
        k += 1
        probability /= k
    table = np.searchsorted(np.array(bounds), np.arange(size), side="right")
    return table.astype(np.uint8)


TABLE = _poisson_table()


def weights(seed: int, n: int, resamples: int, chunk: int = CHUNK) -> Iterator[np.ndarray]:
    """Poisson(1) weights, ``(rows of a chunk, n)`` uint8 arrays, ``resamples`` rows in all."""
    for start in range(0, resamples, chunk):
        yield block(seed, n, start, min(chunk, resamples - start))


def block(seed: int, n: int, start: int, count: int) -> np.ndarray:
    """The weights of resamples start, start + 1, ..., start + count - 1: each resample has a
    stream of its own, so blocks can be drawn in any order, in parallel, with equal results."""
    found = np.empty((count, n), dtype=np.uint8)
    words = -(-n // 4)  # four 16-bit draws per 64-bit word
    for row in range(count):
        stream = np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(start + row,)))
        draws = stream.random_raw(words).view(np.uint16)[:n]
        np.take(TABLE, draws, out=found[row])
    return found


def interval(values: np.ndarray, level: float) -> tuple[float, float]:
    """The percentile interval of bootstrap values at a confidence level (0.95)."""
    finite = values[np.isfinite(values)]
    if not len(finite):
        return math.nan, math.nan
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(finite, [tail, 1.0 - tail])
    return float(low), float(high)
