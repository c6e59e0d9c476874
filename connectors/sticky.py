"""Finding the sticky comment again, the same on every platform: the one whose id we stored,
else the newest comment carrying the marker; every other marker comment is a stale copy (left
by a crash between a write and storing its id) to delete. What a platform supplies is only how
its comments spell their id and which of them count as ours by the marker."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class StickySearch:
    """Our comment among a work item's comments (None when there is none), and the `stale`
    ones that also carry the marker (left by a crash between a write and storing its id), to
    delete."""

    comment: dict[str, Any] | None
    stale: tuple[dict[str, Any], ...]


def find_sticky(comments: Iterable[Mapping[str, Any]], known_id: str | None, *, id_key: str,
                marked: Callable[[Mapping[str, Any]], bool]) -> StickySearch:
    """Our comment: the one whose `id_key` is the stored `known_id`, else the newest that is
    `marked` (carries the marker, and was written by us where the platform can tell). Ids are
    compared as integers: on both platforms a comment's id grows with time. The comments are
    copied, so the result never aliases the caller's records."""
    comments = [dict(comment) for comment in comments]
    ours = next((c for c in comments if known_id is not None and str(c.get(id_key)) == known_id),
                None)
    # one without a numeric id could be neither edited nor deleted: not a candidate
    candidates = [c for c in comments
                  if c is not ours and str(c.get(id_key)).isdecimal() and marked(c)]
    candidates.sort(key=lambda c: int(c[id_key]))
    if ours is None and candidates:
        ours = candidates.pop()
    return StickySearch(ours, tuple(candidates))
