"""ISC's two representations of one run: the sequence (GRU, what ISC reports and the run exports), the
graph (AGCN partner) and both concatenated, on validation splits carved from the training data.

    OMP_NUM_THREADS=1 python benchmarks/isc_representations.py RUN STORE:PROTOCOL [...]

The graph encoder is taken from the run's last checkpoint (``method.kwargs.export=graph``) and written
next to this script's output as ``RUN/eval/graph-encoder.safetensors``. Splits as
:func:`hitrs_levels.carve` (never the test split). Prints one JSON line per store and representation.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hitrs_levels import carve  # noqa: E402

from skelssl.data.store import Store  # noqa: E402
from skelssl.evaluation.diagnostics import effective_rank  # noqa: E402
from skelssl.evaluation.knn import knn_accuracy  # noqa: E402
from skelssl.evaluation.probe import robust_probe  # noqa: E402
from skelssl.jobs.embed import load_encoder  # noqa: E402
from skelssl.jobs.pretrain import export_encoder  # noqa: E402


def graph_encoder(run: Path) -> Path:
    """The AGCN partner of an ISC run's last checkpoint, saved as an encoder file."""
    return export_encoder(run, run / "eval" / "graph-encoder.safetensors", ["method.kwargs.export=graph"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path)
    p.add_argument("stores", nargs="+", metavar="STORE:PROTOCOL")
    args = p.parse_args()
    encoders = {"seq": load_encoder(args.run, device="cpu"), "graph": load_encoder(graph_encoder(args.run), device="cpu")}
    for spec in args.stores:
        path, protocol = spec.rsplit(":", 1)
        store = Store(path)
        fit, val = carve(store, protocol)
        feats = {name: (*emb.embed_store(store, fit), *emb.embed_store(store, val)) for name, emb in encoders.items()}
        (sf, yf, sv, yv), (gf, _, gv, _) = feats["seq"], feats["graph"]
        feats["concat"] = (np.concatenate([sf, gf], 1), yf, np.concatenate([sv, gv], 1), yv)
        for name, (xf, yf_, xv, yv_) in feats.items():
            print(json.dumps({"protocol": protocol, "rep": name, "dim": int(xf.shape[1]),
                              "knn": round(knn_accuracy(xf, yf_, xv, yv_), 2),
                              "probe": round(robust_probe(xf, yf_, xv, yv_).top1, 2),
                              "rank": round(effective_rank(xf), 1)}), flush=True)


if __name__ == "__main__":
    main()
