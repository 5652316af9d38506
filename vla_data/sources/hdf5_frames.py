"""Camera frames of an HDF5 episode, read a bounded block at a time while they are encoded."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from vla_data.errors import SourceError

BLOCK_BYTES = 64 << 20  # raw frames in flight per camera (a 4-camera 480x640 ALOHA episode is 3.7 GB)


@dataclass(frozen=True)
class HDF5Frames:
    """The uint8 `[T, H, W, 3]` dataset `path` of `file`, as `T` frames `[H, W, 3]`.

    Iterating reopens the file and reads about `block_bytes` of frames at a time (whole HDF5 chunks,
    so a compressed chunk is decompressed once), instead of the camera's whole array per episode.
    """

    file: str
    path: str  # absolute path of the dataset inside the file
    episode: str
    length: int
    block_frames: int

    @classmethod
    def of(cls, dataset, file: str, episode: str, block_bytes: int = BLOCK_BYTES) -> HDF5Frames:
        """Frames of an open h5py dataset; `block_bytes` bounds what one read holds."""
        frame_bytes = max(int(np.prod(dataset.shape[1:])) * dataset.dtype.itemsize, 1)
        block = max(block_bytes // frame_bytes, 1)
        if dataset.chunks:  # whole chunks along time: never decompress one chunk twice
            block = max(block // dataset.chunks[0], 1) * dataset.chunks[0]
        return cls(file, dataset.name, episode, int(dataset.shape[0]), block)

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[np.ndarray]:
        import h5py

        try:
            with h5py.File(self.file, "r") as f:
                dataset = f[self.path]
                for start in range(0, self.length, self.block_frames):
                    yield from dataset[start : start + self.block_frames]  # [block, H, W, 3]
        except OSError as e:
            raise SourceError(
                f"cannot read frames ({e}); the file may be truncated",
                file=self.file,
                episode=self.episode,
                key=self.path.lstrip("/"),
            ) from e
