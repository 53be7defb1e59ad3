"""Deterministic randomness: every random draw in the sandbox is a pure function of the seed and
a key (station, day, order, request number...), never of call order, dict order or the clock."""

import hashlib
import uuid

import numpy as np


def _digest(keys: tuple) -> bytes:
    return hashlib.sha256("\x1f".join(str(key) for key in keys).encode()).digest()


def rng(*keys) -> np.random.Generator:
    """A generator seeded by the keys, e.g. rng(seed, "day", station_index, day_ordinal)."""
    return np.random.default_rng(np.frombuffer(_digest(keys), dtype=np.uint32))


def unit(*keys) -> float:
    """A uniform number in [0, 1) fixed by the keys."""
    return int.from_bytes(_digest(keys)[:8], "big") / 2**64


def token(*keys, length: int = 20) -> str:
    """A hexadecimal identifier fixed by the keys."""
    return _digest(keys).hex()[:length]


def uuid_for(*keys) -> str:
    """A version-4 shaped UUID fixed by the keys."""
    return str(uuid.UUID(bytes=_digest(keys)[:16], version=4))
