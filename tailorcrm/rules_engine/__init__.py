"""Rules engine: JSON conditions and formulas (the rules issue fills this in)."""

from __future__ import annotations
