"""
Banned words: every realm's text passes through `Moderation.clean`.

The list is one word per line (`[moderation] banned_words_file`), matched
case-insensitively and replaced by as many `*` as the word has characters.
One compiled alternation, longest words first, so a long word is not half
replaced by a shorter one inside it.
"""

from __future__ import annotations

import re

from twisted.logger import Logger


class Moderation:
    _log = Logger()

    def __init__(self, words: list[str] | None = None) -> None:
        self._pattern: re.Pattern[str] | None = None
        self.set_words(words or [])

    @classmethod
    def from_file(cls, path: str) -> "Moderation":
        if not path:
            return cls()
        with open(path, encoding="utf-8") as f:
            return cls([line.strip() for line in f])

    def set_words(self, words: list[str]) -> None:
        """Replace the list (operators can do this from the manhole)."""
        words = sorted({w for w in (w.strip() for w in words) if w}, key=len, reverse=True)
        self.words = words
        self._pattern = re.compile("|".join(re.escape(w) for w in words), re.IGNORECASE) if words else None

    def clean(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(lambda m: "*" * len(m.group(0)), text)


class ModerationOperators:
    """The operators' face of this node's banned words (the admin API and the manhole's
    `operators["moderation"]`): each node keeps its own list."""

    def __init__(self, moderation: Moderation, banned_words_file: str = "") -> None:
        self.moderation = moderation
        self.banned_words_file = banned_words_file

    def banned_words(self) -> list[str]:
        return list(self.moderation.words)

    def set_banned_words(self, words: list[str]) -> int:
        """Replace this node's list until the next reload or restart."""
        self.moderation.set_words(list(words))
        return len(self.moderation.words)

    def reload_banned_words(self) -> int:
        """Read `[moderation] banned_words_file` again (after editing it); OSError if it cannot."""
        self.moderation.set_words(Moderation.from_file(self.banned_words_file).words)
        return len(self.moderation.words)
