"""Frames of a video at given timestamps, decoded once, in order, with bounded memory (PyAV)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from vla_data.errors import SourceError


@dataclass
class VideoFrames:
    """The frames of `path` nearest to `times` (seconds, ascending), as uint8 `[H, W, 3]` arrays.

    Iterating decodes the file once from the keyframe before `times[0]` and stops after
    `times[-1]`; only the previous and current frame are held. A frame farther than `tolerance`
    from its timestamp is an error naming the episode, camera and timestamp.
    """

    path: str
    times: np.ndarray
    tolerance: float
    episode: str
    camera: str

    def __len__(self) -> int:
        return len(self.times)

    def _error(self, message: str) -> SourceError:
        return SourceError(message, file=self.path, episode=self.episode, key=self.camera)

    def __iter__(self) -> Iterator[np.ndarray]:
        import av

        try:
            container = av.open(self.path)
        except (av.error.FFmpegError, OSError) as e:
            raise self._error(f"cannot open video ({e})") from e
        with container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            if self.times[0] > 0 and stream.time_base:
                container.seek(
                    int(max(self.times[0] - 1.0, 0) / stream.time_base), stream=stream, backward=True
                )
            yield from self._match(container.decode(stream))

    def _match(self, frames) -> Iterator[np.ndarray]:
        query = 0
        previous: tuple[float, object] | None = None
        try:
            for frame in frames:
                current = (float(frame.time), frame)
                while query < len(self.times) and current[0] >= self.times[query]:
                    best = current
                    if previous is not None and abs(previous[0] - self.times[query]) <= abs(
                        current[0] - self.times[query]
                    ):
                        best = previous
                    yield self._checked(best, self.times[query])
                    query += 1
                if query == len(self.times):
                    return
                previous = current
        except Exception as e:  # PyAV raises many error types for damaged streams
            if isinstance(e, SourceError):
                raise
            raise self._error(
                f"video decoding failed near t={self.times[min(query, len(self.times) - 1)]:.3f}s ({e})"
            ) from e
        while query < len(self.times):  # past the last frame: only the last frame can match
            if previous is None:
                raise self._error("video has no frames")
            yield self._checked(previous, self.times[query])
            query += 1

    def _checked(self, found: tuple[float, object], wanted: float) -> np.ndarray:
        distance = abs(found[0] - wanted)
        if distance > self.tolerance:
            raise self._error(
                f"no frame within {self.tolerance * 1000:.1f} ms of timestamp {wanted:.4f}s "
                f"(nearest at {found[0]:.4f}s; video shorter than the data, or timestamps out of sync)"
            )
        return found[1].to_ndarray(format="rgb24")


def write_video(path: str, frames: np.ndarray, fps: int, codec: str = "libx264") -> None:
    """Encode uint8 `[T, H, W, 3]` frames (sample data, tests and benchmarks)."""
    import av

    with av.open(path, "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "18", "g": "10"}
        for array in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
