"""`verify --deep`: decode every stored frame, strictly, and name the first bad one per camera."""

from __future__ import annotations

from pathlib import Path

from vla_data.frame_check import decode_problem
from vla_data.shards.manifest import Manifest
from vla_data.shards.reader import open_arrow_file


def verify_frames(root: Path, manifest: Manifest) -> list[str]:
    """One message per camera holding frames that do not decode cleanly: the first such frame with
    its shard, row and column (and episode and frame), and how many more that camera has.

    Reads one record batch (one episode) at a time from the memory-mapped shards, so memory stays flat.
    """
    cameras = [  # camera columns, and the image lists of web samples
        name
        for name, feature in manifest.features.items()
        if feature.kind == "image" or (feature.kind == "list" and feature.dtype == "binary")
    ]
    first: dict[str, str] = {}
    bad = dict.fromkeys(cameras, 0)
    for info in manifest.shards:
        table = open_arrow_file(root / info.file)
        for camera in cameras:
            row = 0
            for chunk in table.column(camera).chunks:
                for offset, data in enumerate(chunk.to_pylist()):
                    frames = data if isinstance(data, list) else [data]  # a web sample: 0..n images
                    problem = next(
                        filter(None, (decode_problem(d) if d else "no bytes" for d in frames)), None
                    )
                    if problem is None:
                        continue
                    bad[camera] += 1
                    if camera not in first:
                        where = row + offset
                        episode = int(table.column("episode_index")[where].as_py())
                        frame = int(table.column("frame_index")[where].as_py())
                        first[camera] = (
                            f"{info.file} row {where} column {camera!r} (episode {episode}, frame {frame}): "
                            f"{problem}"
                        )
                row += len(chunk)
    return [
        first[camera]
        + (f" (and {bad[camera] - 1} more bad frames of this camera)" if bad[camera] > 1 else "")
        for camera in cameras
        if camera in first
    ]
