"""``merge``: one unlabelled pre-training store from the training samples of several stores.

Self-supervised pre-training may use every unlabelled training sample there is: on small real data
the union of N-UCLA, MSR Action3D and UTKinect (all Kinect v1, ``kinect20``) holds about 1,400
training clips against N-UCLA's 1,020. Only the *training* split of each given protocol is copied, so
no test sample of any of them is seen in pre-training. Layouts are reconciled by refusing to mix
them (a union needs one joint set and one pipeline); person slots are padded with zeros to the
largest ``M``. Labels are dropped (``-1``: the classes of different datasets are not one label
space); the source store of each sample is kept in the integer column ``part`` and its name is
prefixed with the source's dataset.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from skelssl.core.conventions import StoreError
from skelssl.data.store import Store, StoreWriter

__all__ = ["merge_stores"]


def merge_stores(parts: list[tuple[str | Path, str | None]], out: str | Path, *, overwrite: bool = False) -> Store:
    """Write the training samples of ``parts`` into one unlabelled store.

    Args:
        parts: ``(store folder, protocol)`` pairs; with a protocol only its training split is taken,
            with ``None`` every sample of that store.
        out: the store folder to write.
        overwrite: replace an existing store at ``out``.

    Returns:
        The merged :class:`Store` (dataset ``union``, same layout and pipeline as its parts).

    Raises:
        StoreError: parts of different layouts, pipelines or channel counts.
        StoreError: also for a protocol that does not apply to its store.
    """
    from skelssl.data.protocols import split

    opened = [(Store(p), protocol) for p, protocol in parts]
    if not opened:
        raise StoreError("merge: no store given")
    first = opened[0][0]
    for store, _ in opened[1:]:
        for what in ("layout", "pipeline", "channels"):
            a, b = getattr(first, what), getattr(store, what)
            a, b = getattr(a, "name", a), getattr(b, "name", b)
            if a != b:
                raise StoreError(f"merge: {store.path} has {what} {b}, {first.path} has {a}; a union needs one")
    persons = max(s.num_persons for s, _ in opened)
    info = {
        "dataset": "union",
        "source_format": "merge",
        "parts": [{"store": str(s.path.resolve()), "dataset": s.dataset, "protocol": protocol,
                   "checksum": s.info.get("checksum")} for s, protocol in opened],
    }
    with StoreWriter(out, first.layout, persons, channels=first.channels, pipeline=first.pipeline, info=info,
                     overwrite=overwrite) as writer:
        for k, (store, protocol) in enumerate(opened):
            try:
                indices = split(store, protocol)[0] if protocol else np.arange(len(store))
            except (KeyError, ValueError) as e:
                raise StoreError(f"merge: {e.args[0] if e.args else e}") from None
            for i in np.asarray(indices).tolist():
                frames = store.frames(i)  # (T, M, V, C)
                if frames.shape[1] < persons:
                    pad = np.zeros((frames.shape[0], persons - frames.shape[1], *frames.shape[2:]), np.float32)
                    frames = np.concatenate([frames, pad], 1)
                meta = {key: int(store.meta[key][i]) for key in ("subject", "view", "setup", "repetition") if key in store.meta}
                writer.add(f"{store.dataset}/{store.names[i]}", frames, {**meta, "label": -1, "part": k},
                           source=f"{store.path}#{store.names[i]}")
        return writer.close()
