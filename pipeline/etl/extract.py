"""Main text, title and links of an HTML page.

trafilatura finds the main text and title (it is the best-scored open-source main-content extractor
in published comparisons, handles boilerplate such as navigation and footers, and is maintained);
lxml, which it already depends on, resolves and lists the links.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ExtractedPage", "clean_text", "extract_page"]

_WS = re.compile(r"[ \t\u00a0]+")
_BLANK_LINES = re.compile(r"\n{3,}")
MAX_LINKS = 200


@dataclass
class ExtractedPage:
    text: str | None
    title: str | None
    links: list[str] = field(default_factory=list)


def extract_page(html: str, url: str | None = None) -> ExtractedPage:
    """CPU-bound: call it from a thread when on an event loop."""
    import lxml.etree
    import lxml.html
    import trafilatura

    # A Document (as_dict=False, the default); typed as Document | dict.
    doc: Any = trafilatura.bare_extraction(
        html, url=url, with_metadata=True, include_links=False, favor_recall=True
    )
    text = doc.text if doc is not None else None
    title = doc.title if doc is not None else None
    links: list[str] = []
    try:
        tree = lxml.html.fromstring(html)
        if url:
            tree.make_links_absolute(url, resolve_base_href=True)
        seen: set[str] = set()
        for href in tree.xpath("//a/@href"):
            href = str(href).strip()
            if href.startswith(("http://", "https://")) and href not in seen:
                seen.add(href)
                links.append(href)
        if not title:
            found = tree.findtext(".//title")
            title = found.strip() if found else None
    except (ValueError, lxml.etree.ParserError):
        pass
    return ExtractedPage(text=text, title=title, links=links[:MAX_LINKS])


def clean_text(text: str) -> str:
    """Collapse runs of spaces, trim lines, keep at most one blank line between paragraphs."""
    lines = [_WS.sub(" ", line).strip() for line in text.replace("\r", "\n").split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
