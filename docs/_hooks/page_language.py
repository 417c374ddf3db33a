"""MkDocs hook: a page written in another language than the site's says so.

A page whose front matter has ``language: ko`` is rendered with the theme's language set to that one, so that
Material writes ``<html lang="ko">`` and its own labels ("Skip to content", search) in that language. Every other
page, and every template after it, gets the site's language.
"""

from __future__ import annotations

from typing import Any

_site: dict[str, str] = {}


def on_config(config: Any, **kwargs: Any) -> Any:
    _site["language"] = config.theme["language"]
    return config


def on_page_context(context: Any, page: Any, config: Any, **kwargs: Any) -> Any:
    config.theme["language"] = page.meta.get("language", _site["language"])
    return context


def on_post_page(output: str, config: Any, **kwargs: Any) -> str:
    config.theme["language"] = _site["language"]
    return output
