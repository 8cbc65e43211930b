"""Corpus adapters (one module per corpus, each registers itself), the clip-manifest
schema, and the scan stage that runs adapters on Ray with a cached manifest."""
from .base import (ADAPTERS, CLIP_SCHEMA, REJECT_SCHEMA, Adapter, LayoutError, ManifestResult, ProbeError, Reject,
                   clip_row, get_adapter, register_adapter, write_manifest)

__all__ = ["ADAPTERS", "CLIP_SCHEMA", "REJECT_SCHEMA", "Adapter", "LayoutError", "ManifestResult", "ProbeError",
           "Reject", "clip_row", "get_adapter", "register_adapter", "write_manifest"]
