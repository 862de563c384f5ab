"""Named evaluation protocols (train/test splits from metadata) and seeded label-fraction subsets.

A protocol is a rule over a store's metadata columns; it never looks at the frames. Each protocol
belongs to one dataset key (the ``dataset`` field of ``store.json``, set by the format reader).
Label-fraction subsets (1 %, 5 %, 10 %, 20 % of a protocol's training set) are class-stratified and
seeded, and are saved inside the store at ``prepare`` time so that every method is compared on the
same labelled samples.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable

import numpy as np

from skelssl.data.store import Store, atomic_write_bytes, atomic_write_text

__all__ = [
    "Protocol",
    "PROTOCOLS",
    "DEFAULT_FRACTIONS",
    "DEFAULT_SUBSET_SEEDS",
    "available_protocols",
    "own_protocols",
    "get_protocol",
    "split",
    "sequence_split",
    "identical_to_train_count",
    "label_fraction_subset",
    "subset_key",
    "compute_subsets",
    "save_subsets",
    "subsets_bytes",
    "subset_indices",
]

# Official NTU training subjects (docs/protocols.md).
NTU60_XSUB_TRAIN = (1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38)
NTU120_XSUB_TRAIN = NTU60_XSUB_TRAIN + (
    45, 46, 47, 49, 50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84, 85, 86, 89, 91,
    92, 93, 94, 95, 97, 98, 100, 103,
)

DEFAULT_FRACTIONS = (0.01, 0.05, 0.1, 0.2)
DEFAULT_SUBSET_SEEDS = (0, 1, 2)

Meta = dict[str, np.ndarray]


@dataclass(frozen=True)
class Protocol:
    """A named split.

    Args:
        name: e.g. ``"ntu60-xsub"``.
        dataset: the store ``dataset`` key it applies to.
        rule: ``meta -> (train_mask, test_mask)``; samples in neither are outside the protocol.
        description: one line for ``skelssl info``.
    """

    name: str
    dataset: str
    rule: Callable[[Meta], tuple[np.ndarray, np.ndarray]]
    description: str


def _ntu60(meta: Meta) -> np.ndarray:
    # NTU-60 is setups 1-17 and actions 1-60 of NTU-120.
    return (meta["setup"] <= 17) & (meta["label"] < 60) & (meta["label"] >= 0)


def _by(column: str, train_values, universe: Callable[[Meta], np.ndarray] | None = None):
    def rule(meta: Meta) -> tuple[np.ndarray, np.ndarray]:
        inside = universe(meta) if universe else np.ones(len(meta[column]), bool)
        train = np.isin(meta[column], np.asarray(train_values)) & inside
        return train, inside & ~train

    return rule


def _flag(column: str):
    def rule(meta: Meta) -> tuple[np.ndarray, np.ndarray]:
        if column not in meta:
            raise KeyError(f"store has no {column!r} column (prepare it from the official split files)")
        col = meta[column]
        return col == 1, col == 0

    return rule


def _odd(column: str):
    def rule(meta: Meta) -> tuple[np.ndarray, np.ndarray]:
        col = meta[column]
        valid = col >= 0
        return valid & (col % 2 == 1), valid & (col % 2 == 0)

    return rule


def _range(column: str, lo: int, hi: int):
    def rule(meta: Meta) -> tuple[np.ndarray, np.ndarray]:
        col = meta[column]
        valid = col >= 0
        train = (col >= lo) & (col <= hi)
        return train, valid & ~train

    return rule


PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (
        Protocol("ntu60-xsub", "ntu", _by("subject", NTU60_XSUB_TRAIN, _ntu60), "NTU-60 cross-subject (20 training subjects)"),
        Protocol("ntu60-xview", "ntu", _by("view", (2, 3), _ntu60), "NTU-60 cross-view (train cameras 2, 3; test camera 1)"),
        Protocol("ntu120-xsub", "ntu", _by("subject", NTU120_XSUB_TRAIN), "NTU-120 cross-subject (53 training subjects)"),
        Protocol("ntu120-xset", "ntu", _by("setup", tuple(range(2, 33, 2))), "NTU-120 cross-setup (even setups train)"),
        Protocol("nucla-xview", "nucla", _by("view", (1, 2)), "N-UCLA cross-view (train views 1, 2; test view 3)"),
        Protocol("pku1-xsub", "pku1", _flag("pku_xsub_train"), "PKU-MMD phase 1 cross-subject (official split file)"),
        Protocol("pku1-xview", "pku1", _flag("pku_xview_train"), "PKU-MMD phase 1 cross-view (official split file)"),
        Protocol("msr-xsub", "msr", _odd("subject"), "MSR Action3D cross-subject (odd subjects train)"),
        Protocol("utkinect-xsub", "utkinect", _range("subject", 1, 5), "UTKinect cross-subject (subjects 1-5 train)"),
        Protocol("arrays-official", "arrays", _flag("split_train"), "the train/test split stored with a CTR-GCN/MAMP .npz"),
        Protocol("synthetic-xsub", "synthetic", _odd("subject"), "synthetic actions cross-subject (odd subjects train)"),
        Protocol("synthetic-xview", "synthetic", _by("view", (1, 2)), "synthetic actions cross-view (views 1, 2 train; 3 test)"),
    )
}


def get_protocol(name: str) -> Protocol:
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise KeyError(f"unknown protocol {name!r}; known: {', '.join(sorted(PROTOCOLS))}") from None


def own_protocols(store: Store) -> dict[str, tuple[str, str]]:
    """The data's own splits, as protocols: ``name -> (train column, test column)``.

    A source that ships its splits (a PYSKL pickle's ``split`` dict: ``xsub_train``/``xsub_val``)
    gives the store columns ``split_xsub_train`` and ``split_xsub_val``; each such pair (``_val`` or
    ``_test``) is the protocol ``xsub`` of that store. A name that is also a named protocol is left out.
    """
    columns = set(store.meta)
    out: dict[str, tuple[str, str]] = {}
    for col in sorted(columns):
        if not (col.startswith("split_") and col.endswith("_train")):
            continue
        name = col[len("split_"):-len("_train")]
        if not name or name in PROTOCOLS:
            continue
        for test in ("val", "test"):
            if f"split_{name}_{test}" in columns:
                out[name] = (col, f"split_{name}_{test}")
                break
    return out


def available_protocols(store: Store) -> list[str]:
    """Protocols of the store's dataset, then the data's own splits (:func:`own_protocols`), that have
    at least one training and one test sample."""
    out = []
    for name, (tr, te) in own_protocols(store).items():
        if (store.meta[tr] == 1).any() and (store.meta[te] == 1).any():
            out.append(name)
    for p in PROTOCOLS.values():
        if p.dataset != store.dataset:
            continue
        try:
            train, test = p.rule(store.meta)
        except KeyError:
            continue
        if train.any() and test.any():
            out.append(p.name)
    return sorted(out, key=lambda n: n not in PROTOCOLS)  # named protocols first


def split(store: Store, protocol: str) -> tuple[np.ndarray, np.ndarray]:
    """``(train_indices, test_indices)`` of a protocol on a store (sorted int64 arrays): a named
    protocol, or one of the store's own splits (:func:`own_protocols`)."""
    labelled = store.labels >= 0
    if protocol not in PROTOCOLS:
        own = own_protocols(store)
        if protocol not in own:
            mine = f"; this store's own splits: {', '.join(own)}" if own else ""
            raise KeyError(f"unknown protocol {protocol!r}; known: {', '.join(sorted(PROTOCOLS))}{mine}")
        tr, te = own[protocol]
        train, test = store.meta[tr] == 1, store.meta[te] == 1
        return np.flatnonzero(train & labelled).astype(np.int64), np.flatnonzero(test & labelled & ~train).astype(np.int64)
    p = get_protocol(protocol)
    if p.dataset != store.dataset:
        raise ValueError(f"protocol {protocol} is for {p.dataset!r} data, but {store.path} holds {store.dataset!r}")
    train, test = p.rule(store.meta)
    return np.flatnonzero(train & labelled).astype(np.int64), np.flatnonzero(test & labelled).astype(np.int64)


def sequence_split(store: Store, protocol: str) -> tuple[np.ndarray, np.ndarray]:
    """``(train_indices, test_indices)`` of a protocol on an *untrimmed* store (detection).

    An untrimmed store holds one sample per whole sequence, with per-frame labels and sample label
    ``-1`` (``skelssl prepare pku_mmd SOURCE --untrimmed`` writes dataset ``pku1_untrimmed``;
    :func:`skelssl.data.synthetic.write_untrimmed_store` writes ``synthetic_untrimmed``). The
    protocols of dataset ``d`` apply to dataset ``d_untrimmed`` by the same metadata rule (PKU-MMD's
    official splits list whole videos).
    """
    p = get_protocol(protocol)
    if store.dataset not in (p.dataset, f"{p.dataset}_untrimmed"):
        raise ValueError(f"protocol {protocol} is for {p.dataset!r} data, but {store.path} holds {store.dataset!r}")
    if not store.has_frame_labels:
        raise ValueError(f"{store.path} has no per-frame labels: prepare an untrimmed store (e.g. skelssl prepare pku_mmd SOURCE --untrimmed)")
    train, test = p.rule(store.meta)
    return np.flatnonzero(train).astype(np.int64), np.flatnonzero(test).astype(np.int64)


def identical_to_train_count(store: Store, train: np.ndarray, test: np.ndarray) -> int | None:
    """How many test samples have frames bit-identical to a training sample (a leak between the
    splits); ``None`` when the store does not record duplicates (written by an older skelssl).

    Real data has such pairs: in the N-UCLA ``all_sqe`` release 95 view-3 (test) sequences equal their
    view-2 (training) sequence, so ``nucla-xview`` tests on 95 training sequences.
    """
    groups = store.duplicate_groups
    if groups is None:
        return None
    in_train = np.zeros(len(store), dtype=bool)
    in_train[np.asarray(train, dtype=np.int64)] = True
    leaked = 0
    test_set = set(np.asarray(test, dtype=np.int64).tolist())
    for group in groups:
        if in_train[group].any():
            leaked += sum(1 for i in group.tolist() if i in test_set and not in_train[i])
    return leaked


def label_fraction_subset(labels: np.ndarray, train_indices: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A class-stratified, seeded subset of ``train_indices``.

    Each class keeps ``max(1, round(fraction * n_c))`` of its ``n_c`` training samples (NTU-60 at 1 %
    gives 7 per class, 420 in all, as the Hi-TRS index lists). Deterministic for a given seed.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"label fraction must be in (0, 1], got {fraction}")
    rng = np.random.default_rng(seed)
    train_indices = np.asarray(train_indices, np.int64)
    chosen = []
    for c in np.unique(labels[train_indices]):
        members = train_indices[labels[train_indices] == c]
        k = max(1, int(round(fraction * len(members))))
        chosen.append(rng.permutation(members)[:k])
    return np.sort(np.concatenate(chosen)) if chosen else train_indices[:0]


def subset_key(protocol: str, fraction: float, seed: int) -> str:
    return f"{protocol}/{fraction:g}/seed{seed}"


def compute_subsets(
    store: Store,
    fractions=DEFAULT_FRACTIONS,
    seeds=DEFAULT_SUBSET_SEEDS,
) -> dict[str, np.ndarray]:
    """Label-fraction subsets of every available protocol of a store."""
    out: dict[str, np.ndarray] = {}
    for name in available_protocols(store):
        train, _ = split(store, name)
        for f in fractions:
            for s in seeds:
                out[subset_key(name, f, s)] = label_fraction_subset(store.labels, train, f, s)
    return out


def subsets_bytes(subsets: dict[str, np.ndarray]) -> bytes:
    """The bytes of a ``subsets.npz`` holding ``subsets``."""
    import io

    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v, np.int64) for k, v in subsets.items()})
    return buf.getvalue()


def save_subsets(store: Store, subsets: dict[str, np.ndarray]) -> None:
    """Write ``subsets.npz`` into a published store atomically (merging with those already saved), and
    its digest into ``store.json`` so that :meth:`Store.verify` still covers it."""
    import json

    merged = store.saved_subsets()
    merged.update({k: np.asarray(v, np.int64) for k, v in subsets.items()})
    data = subsets_bytes(merged)
    atomic_write_bytes(store.path / "subsets.npz", data)
    if "files" in store.info:
        store.info["files"]["subsets.npz"] = hashlib.blake2b(data, digest_size=16).hexdigest()
        atomic_write_text(store.path / "store.json", json.dumps(store.info, indent=1) + "\n")


def subset_indices(store: Store, protocol: str, fraction: float, seed: int) -> np.ndarray:
    """The saved subset for ``(protocol, fraction, seed)``; computed (same rule) when not saved."""
    key = subset_key(protocol, fraction, seed)
    saved = store.saved_subsets()
    if key in saved:
        return saved[key]
    train, _ = split(store, protocol)
    return label_fraction_subset(store.labels, train, fraction, seed)
