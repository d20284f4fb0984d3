"""Renderer: metadata, records and permissions become page models and HTML."""

from __future__ import annotations
