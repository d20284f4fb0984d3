"""Tailor CRM: a metadata-driven, low-code CRM platform."""

from __future__ import annotations

__version__ = "0.1.0"
