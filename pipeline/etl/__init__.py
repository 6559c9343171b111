"""Reusable extract/transform helpers (no browser, no model)."""

from podfleet.pipeline.etl.extract import ExtractedPage, clean_text, extract_page

__all__ = ["ExtractedPage", "clean_text", "extract_page"]
