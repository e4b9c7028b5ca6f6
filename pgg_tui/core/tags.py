"""Tags as people type them: one rule wherever a tag is typed (`pgg queue`, `pgg annotate`, `pgg runs --tag`,
the app's queue and label forms).

Commas and spaces separate tags, and a leading `#` is not part of a tag: it is how listings and the app show
one (`baseline #keep #rl`) and how the app's filter finds one (`/#keep`). So `pgg annotate 3 --tag '#keep'`
tags the run `keep`, which the app shows as `#keep` and its `#keep` filter finds, as does `pgg runs --tag keep`
(or `--tag '#keep'`). A tag never holds a space, so the label form, which shows a run's tags space-separated,
saves back what it shows. Torch- and Textual-free: both front ends import it.
"""

from __future__ import annotations

from collections.abc import Iterable

from engine.errors import ConfigError

MAX_TAG = 32  # characters; engine.store.clean_tags keeps no more


def parse_tags(words: Iterable[str]) -> list[str]:
    """`["#keep, rl", "a b", "keep"]` -> ["keep", "rl", "a", "b"]: each tag once, in the order typed.
    A tag over MAX_TAG characters or with a control character in it is a ConfigError (one line)."""
    out: list[str] = []
    for word in words:
        for tag in str(word).replace(",", " ").split():
            tag = tag.lstrip("#")
            if not tag:
                continue
            if len(tag) > MAX_TAG:
                raise ConfigError(f"tag {tag[:MAX_TAG]!r}… is longer than {MAX_TAG} characters")
            if not tag.isprintable():
                raise ConfigError(f"tag {tag!r} holds a control character")
            if tag not in out:
                out.append(tag)
    return out
