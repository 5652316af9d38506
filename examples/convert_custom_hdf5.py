"""Convert HDF5 files of your own layout with a mapping, then read steps back.

    python examples/convert_custom_hdf5.py my_episodes/ out/

Each episode group (here `demo_N` at the file root) holds `action` and `observation`; adapt the
mapping to your paths. The same mapping on the command line:

    vla-data convert hdf5 my_episodes/ out/ --map action=action --map observation.state=observation
"""

import sys

from vla_data import ShardDataset
from vla_data.convert import ConvertOptions, convert
from vla_data.sources.hdf5 import HDF5Source


def main(src: str, out: str) -> None:
    source = HDF5Source.from_paths(
        src,
        layout="map",
        mapping={"action": "action", "observation.state": "observation"},
        task="balance the pole",
        fps=50,
    )
    manifest = convert(source, out, ConvertOptions(workers=2, on_error="skip"))
    print(f"{manifest.num_episodes} episodes, {manifest.num_frames} frames, {len(manifest.skipped)} skipped")

    dataset = ShardDataset(out)
    step = dataset.step(0)
    print("first step:", {k: getattr(v, "shape", v) for k, v in step.items()})


if __name__ == "__main__":  # worker processes re-import this file; the guard keeps them from converting
    main(sys.argv[1], sys.argv[2])
