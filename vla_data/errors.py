"""Errors raised by vla-data. Every message names the file, episode and key involved."""

from __future__ import annotations


class VlaDataError(Exception):
    """Base class of every error vla-data raises on purpose."""


class SourceError(VlaDataError):
    """A source file cannot be read as the requested format.

    The message always carries the file, and the episode and key when they are known, so a user can
    open the file and look at the exact place.
    """

    def __init__(self, message: str, *, file: str, episode: str | int | None = None, key: str | None = None):
        self.file = str(file)
        self.episode = episode
        self.key = key
        where = [f"file {self.file}"]
        if episode is not None:
            where.append(f"episode {episode}")
        if key is not None:
            where.append(f"key {key!r}")
        self.reason = message
        super().__init__(f"{', '.join(where)}: {message}")

    def __reduce__(self):
        # Keyword-only fields: tell pickle how to rebuild the error when it crosses a process pool.
        return (_rebuild_source_error, (self.reason, self.file, self.episode, self.key))


def _rebuild_source_error(message, file, episode, key) -> SourceError:
    return SourceError(message, file=file, episode=episode, key=key)


class ShardError(VlaDataError):
    """A converted dataset (shards + manifest) is missing, incomplete or corrupt."""


class FormatVersionError(ShardError):
    """A dataset was written by an incompatible version of the shard format."""


class TokenizerError(VlaDataError):
    """A tokenizer cannot be fitted, loaded, or cannot encode/decode the given input."""
