"""What a Kinetics-400-sized 2D corpus costs to prepare: a PYSKL 2D pickle (COCO-17, float16 keypoints
in pixels + keypoint_score, img_shape, split) of N clips, timed through ``skelssl prepare pyskl``.

    python benchmarks/scale_prepare.py --clips 5000 --frames 300 --persons 2 --workdir /tmp/scale2d

Prints one JSON row: the pickle's size, the prepare wall time and clips/s, the store's size on disk and
bytes per clip, and the peak RSS of the prepare process (the pickle is loaded whole, as PYSKL's own
loader does). The keypoints are random (reading and normalising cost the same for any values).
"""

from __future__ import annotations

import argparse
import json
import pickle
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def write_pickle(path: Path, clips: int, frames: int, persons: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    anns = []
    for i in range(clips):
        t = int(rng.integers(frames // 2, frames + 1))  # Kinetics clips: 10 s at 30 fps, some shorter
        kp = np.stack([rng.uniform(0, 340, size=(persons, t, 17)), rng.uniform(0, 256, size=(persons, t, 17))], -1)
        anns.append({"frame_dir": f"clip{i:06d}", "label": i % 400, "img_shape": (256, 340), "original_shape": (256, 340),
                     "total_frames": t, "keypoint": kp.astype(np.float16),
                     "keypoint_score": rng.uniform(0, 1, size=(persons, t, 17)).astype(np.float16)})
    names = [a["frame_dir"] for a in anns]
    cut = len(names) * 9 // 10
    path.write_bytes(pickle.dumps({"split": {"train": names[:cut], "val": names[cut:]}, "annotations": anns}, protocol=4))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--clips", type=int, default=5000)
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--persons", type=int, default=2)
    p.add_argument("--workdir", default="/tmp/scale2d")
    args = p.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    pkl, store = work / "k400_like_2d.pkl", work / "store"
    ours = (pkl, store, work / f".{store.name}.lock")  # the pickle, the store and its writer lock
    foreign = sorted(p.name for p in work.iterdir() if p not in ours)
    if foreign:
        sys.exit(f"{work} holds other files ({', '.join(foreign[:3])}); give a new or empty --workdir")
    t0 = time.perf_counter()
    write_pickle(pkl, args.clips, args.frames, args.persons)
    gen_s = time.perf_counter() - t0
    skelssl = Path(sys.executable).with_name("skelssl")
    t0 = time.perf_counter()
    # --overwrite replaces only a skelssl store of ours (an earlier run of this benchmark), never other files.
    subprocess.run([str(skelssl), "prepare", "pyskl", str(pkl), "--out", str(store), "--persons", str(args.persons),
                    "--overwrite"],
                   check=True, stdout=subprocess.DEVNULL)
    prep_s = time.perf_counter() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    size = sum(f.stat().st_size for f in store.rglob("*") if f.is_file())
    row = {
        "clips": args.clips, "frames_max": args.frames, "persons": args.persons,
        "pickle_mb": round(pkl.stat().st_size / 2**20, 1), "pickle_write_s": round(gen_s, 1),
        "prepare_s": round(prep_s, 1), "clips_per_s": round(args.clips / prep_s, 1),
        "store_mb": round(size / 2**20, 1), "store_bytes_per_clip": round(size / args.clips),
        "prepare_peak_rss_mb": round(rss_mb),
    }
    print(json.dumps(row))


if __name__ == "__main__":
    main()
