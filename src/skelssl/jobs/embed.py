"""Embeddings out: a trained encoder as a function from skeleton clips to feature vectors.

::

    import skelssl
    enc = skelssl.load_encoder("runs/isc-nucla")        # a run folder or an encoder.safetensors file
    z = enc.embed(clips)                                # (N, D) float32 numpy
    z, labels = enc.embed_store("stores/nucla", idx)    # samples of a store, as `skelssl eval knn` sees them

The encoder file records the store it was trained on (pipeline, layout, channels, persons) and the
resolved test-time input (``eval.input``: even subsampling to ``max_frames``, then, where the recipe
sets ``frames``, the centre crop resized to ``frames``). :meth:`Embedder.embed` applies exactly the
input path of ``skelssl eval knn`` (the same dataset slicing, collation, batch size and transform),
so embeddings of a store's samples equal the features kNN and the linear probe were computed on.

Clips given as arrays must already be in the training store's coordinates (its pipeline);
:meth:`Embedder.preprocess` runs that pipeline on a clip of raw bodies.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from skelssl.core.conventions import to_ctvm
from skelssl.core.layouts import Layout, get_layout
from skelssl.data.dataset import SkeletonDataset, uniform_frame_indices
from skelssl.data.store import Store, channels_for_encoder
from skelssl.engine import checkpoint as ckpt
from skelssl.engine.config import ConfigError, load_eval_config
from skelssl.engine.eval_config import InputConfig
from skelssl.engine.eval_input import stream_view, test_transform
from skelssl.evaluation.features import extract_features

__all__ = ["Embedder", "load_encoder", "SPLITS", "store_indices"]

SPLITS = ("train", "test", "all")


class _Clips(Dataset):
    """In-memory clips as :class:`SkeletonDataset` items (``x`` shortened to ``max_frames`` the same way)."""

    def __init__(self, clips: list[torch.Tensor], max_frames: int | None) -> None:
        self.clips, self.max_frames = clips, max_frames

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> dict[str, Any]:
        x = self.clips[i]  # (C, T, V, M)
        if self.max_frames is not None and x.shape[1] > self.max_frames:
            x = x[:, torch.from_numpy(uniform_frame_indices(x.shape[1], self.max_frames))]
        return {"x": x.contiguous(), "length": x.shape[1], "label": -1, "index": i}


@dataclass
class Embedder:
    """A frozen encoder with the test-time input of its run.

    Attributes:
        encoder: the :class:`~skelssl.models.base.Encoder` (eval mode, on ``device``).
        input: the test-time input settings (``eval.input`` of the run, with any overrides).
        batch_size: samples per forward pass (``eval.knn.batch_size``, as ``skelssl eval`` uses).
        data: what the encoder was trained on: ``pipeline``, ``layout``, ``channels``, ``num_persons``,
            ``dataset``, ``store`` (``{}`` when neither the file nor the training store says).
        path: the encoder file.
        device: where the encoder runs.
    """

    encoder: nn.Module
    input: InputConfig
    batch_size: int
    data: dict[str, Any]
    path: Path
    device: torch.device
    warnings: list[str] = field(default_factory=list)

    # -- what the encoder expects ---------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """Feature dimension ``D``."""
        return int(self.encoder.out_dim)

    @property
    def spec(self) -> dict[str, Any]:
        return self.encoder.spec

    @property
    def layout(self) -> Layout:
        return get_layout(self.spec["kwargs"]["layout"])

    @property
    def channels(self) -> int:
        return int(self.spec["kwargs"]["in_channels"])

    @property
    def num_persons(self) -> int:
        return int(self.spec["kwargs"].get("num_persons", 1))

    @property
    def pipeline(self) -> str | None:
        """The preprocessing pipeline of the training store (``None``: not recorded)."""
        return self.data.get("pipeline")

    @property
    def channel_names(self) -> list[str]:
        """The channels the encoder takes (``x, y, z`` unless the file says otherwise)."""
        names = self.data.get("channel_names")
        return list(names) if names else ["x", "y", "z"][: self.channels]

    def store_channel_names(self) -> list[str] | None:
        """The channels of the training store itself (``x, y, score`` for an encoder trained on its
        ``x, y`` with ``data.use_score=false``); ``None`` when neither the file nor the store says."""
        names = self.data.get("store_channel_names")
        if names:
            return list(names)
        store = self.data.get("store")
        if store and (Path(store) / "store.json").is_file():
            try:
                return Store(store).channel_names
            except Exception:  # an unreadable store only means we cannot tell
                return None
        return None

    def _own_channels(self, x: torch.Tensor) -> torch.Tensor:
        """A clip ``(C, T, V, M)`` with the training store's full channels, read as the encoder reads
        that store: an ``x, y, score`` clip for an encoder trained without the score loses the score."""
        if x.ndim != 4 or x.shape[0] == self.channels:
            return x
        full, own = self.store_channel_names(), self.channel_names
        if full and x.shape[0] == len(full) and set(own) <= set(full):
            return x[[full.index(n) for n in own]]
        return x

    def _in_stream(self, x: torch.Tensor) -> torch.Tensor:
        """A clip ``(C, T, V, M)`` of joints in the input stream the encoder was trained on."""
        stream = self.data.get("stream", "joint")
        if stream == "joint":
            return x
        from skelssl.transforms.streams import to_stream

        coords = sum(1 for n in self.channel_names if n in ("x", "y", "z")) or None
        return to_stream(stream, torch.as_tensor(x, dtype=torch.float32)[None], self.layout, coords=coords)[0]

    def _check(self, c: int, v: int, m: int, what: str) -> None:
        want = (self.channels, self.layout.num_joints, self.num_persons)
        if (c, v, m) != want:
            raise ValueError(f"{what} has C={c} channels, V={v} joints, M={m} persons; this encoder takes "
                             f"C={want[0]} ({', '.join(self.channel_names)}), V={want[1]} ({self.layout.name}), M={want[2]}")

    # -- embedding ------------------------------------------------------------------------------------
    def embed(self, clips: Any, lengths: Sequence[int] | torch.Tensor | None = None, progress: bool = False) -> np.ndarray:
        """Features of clips, through the run's test-time input.

        Args:
            clips: one clip ``(C, T, V, M)``, a list of clips (each its own ``T``), or a zero-padded
                batch ``(N, C, T, V, M)``; numpy arrays or tensors, in the training store's coordinates.
            lengths: valid frames of each clip of a padded batch (default: all ``T``).
            progress: a progress bar.

        Returns:
            ``(N, D)`` float32 features, in the order of ``clips``.

        Raises:
            ValueError: a clip whose shape the encoder cannot take.
        """
        items = [self._own_channels(x) for x in _as_clips(clips, lengths)]
        for i, x in enumerate(items):
            self._check(x.shape[0], x.shape[2], x.shape[3], f"clip {i} of shape {tuple(x.shape)}")
        items = [self._in_stream(x) for x in items]
        feats, _ = extract_features(self.encoder, _Clips(items, self.input.max_frames), batch_size=self.batch_size,
                                    device=self.device, batch_transform=test_transform(self.input), progress=progress)
        return feats.numpy()

    def embed_store(self, store: Store | str | Path, indices: Sequence[int] | np.ndarray | None = None,
                    progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Features and labels of a store's samples (default: all), as ``skelssl eval`` computes them.

        Returns:
            ``features`` ``(N, D)`` float32 and ``labels`` ``(N,)`` int64, in the order of ``indices``.

        Raises:
            ConfigError: a store of another layout, channel count or person count than the encoder's.
        """
        store = self.input_store(store if isinstance(store, Store) else Store(store))
        try:
            self._check(store.channels, store.layout.num_joints, store.num_persons, f"store {store.path}")
        except ValueError as e:
            raise ConfigError(str(e)) from None
        if store.layout.name != self.layout.name:
            raise ConfigError(f"store {store.path} has layout {store.layout.name}, this encoder was trained on {self.layout.name}")
        dataset = SkeletonDataset(store, indices, max_frames=self.input.max_frames)
        feats, labels = extract_features(self.encoder, dataset, batch_size=self.batch_size, device=self.device,
                                         batch_transform=test_transform(self.input), progress=progress)
        return feats.numpy(), labels.numpy()

    def input_store(self, store: Store) -> Store:
        """``store`` read through the channels and the input stream the encoder was trained on (an
        ``x, y, score`` store without its score for an encoder trained with ``data.use_score=false``)."""
        return stream_view(channels_for_encoder(store, self.data.get("channel_names")), self.data.get("stream", "joint"))

    def pipeline_warning(self, store: Store) -> str | None:
        """A line when ``store`` was prepared with another pipeline than the training store."""
        if self.pipeline and store.pipeline != self.pipeline:
            return (f"the encoder was trained on the {self.pipeline!r} pipeline, {store.path} holds {store.pipeline!r}: "
                    f"the coordinates differ (prepare it with --pipeline {self.pipeline})")
        return None

    def preprocess(self, bodies: np.ndarray) -> np.ndarray:
        """Run the training store's pipeline on one clip of raw bodies.

        Args:
            bodies: ``(T, B, V, C)`` as a reader gives them (``B`` tracked bodies, absent ones zero).

        Returns:
            ``(C, T', V, M)`` float32, ready for :meth:`embed`.
        """
        from skelssl.data.preprocess import PIPELINES, apply_pipeline
        from skelssl.data.sample import RawSample

        if self.pipeline is None:
            raise ValueError(f"{self.path} records no pipeline (and its training store is not here)")
        if self.pipeline not in PIPELINES:
            raise ValueError(f"the encoder was trained on a {self.pipeline!r} store, not one of the pipelines "
                             f"({', '.join(PIPELINES)}): give clips in that store's coordinates to embed()")
        bodies = np.asarray(bodies, dtype=np.float32)
        done = apply_pipeline(self.pipeline, RawSample(name="clip", bodies=bodies), self.layout, self.num_persons)
        return np.ascontiguousarray(to_ctvm(done.bodies))


def _as_clips(clips: Any, lengths: Sequence[int] | torch.Tensor | None) -> list[torch.Tensor]:
    """A list of ``(C, T, V, M)`` float32 CPU tensors from any of the accepted forms."""
    if isinstance(clips, (np.ndarray, torch.Tensor)):
        x = torch.as_tensor(np.asarray(clips) if isinstance(clips, np.ndarray) else clips).float().cpu()
        if x.ndim == 4:
            if lengths is not None:
                raise ValueError("lengths are for a padded batch (N, C, T, V, M); one clip has its own T")
            return [x]
        if x.ndim != 5:
            raise ValueError(f"clips must be (C, T, V, M), a list of those, or (N, C, T, V, M); got shape {tuple(x.shape)}")
        n, t = x.shape[0], x.shape[2]
        lens = [t] * n if lengths is None else [int(v) for v in lengths]
        if len(lens) != n or any(not 1 <= v <= t for v in lens):
            raise ValueError(f"lengths must be {n} values in 1..{t}, got {lens}")
        return [x[i, :, : lens[i]] for i in range(n)]
    if lengths is not None:
        raise ValueError("lengths are for a padded batch (N, C, T, V, M); a list of clips has each its own T")
    out = [torch.as_tensor(np.asarray(c, dtype=np.float32)) for c in clips]
    if not out:
        raise ValueError("no clips to embed")
    for i, c in enumerate(out):
        if c.ndim != 4 or c.shape[1] < 1:
            raise ValueError(f"clip {i} must be (C, T, V, M) with T >= 1, got shape {tuple(c.shape)}")
    return out


def _training_data(meta: dict[str, Any]) -> dict[str, Any]:
    """The file's record of its training store, else what that store's ``store.json`` says (if it is here)."""
    if isinstance(meta.get("data"), dict):
        return dict(meta["data"])
    store = (meta.get("config", {}).get("data") or {}).get("store")
    if store and (Path(store) / "store.json").is_file():
        try:
            info = json.loads((Path(store) / "store.json").read_text())
            return {"store": store, "pipeline": info.get("pipeline"), "layout": info.get("layout"),
                    "channels": info.get("channels"), "num_persons": info.get("num_persons"), "dataset": info.get("dataset")}
        except (OSError, ValueError):
            pass
    return {}


def load_encoder(run: str | Path, overrides: Sequence[str] = (), device: str | torch.device | None = None) -> Embedder:
    """A trained encoder with its run's test-time input, ready to embed clips.

    Args:
        run: a pre-training run folder or its ``encoder.safetensors`` (never a pickle).
        overrides: ``section.key=value`` evaluation settings, as ``skelssl eval`` takes them
            (``input.frames=64``); the test-time input must match the evaluation it is compared with.
        device: ``"cpu"``, ``"cuda"``...; default CUDA when available (as ``skelssl eval``).

    Returns:
        An :class:`Embedder`.

    Raises:
        CheckpointError: no encoder file there, or not a skelssl encoder.
        ConfigError: a bad override.
    """
    run = Path(run)
    path = run / "encoder.safetensors" if run.is_dir() else run
    if run.is_dir() and not path.is_file():
        raise ckpt.CheckpointError(f"{run}: no encoder.safetensors (is the pre-training finished?)")
    if not path.exists():
        raise ckpt.CheckpointError(f"{run}: no such run folder or encoder file")
    meta = ckpt.encoder_metadata(path)
    section = dict(meta["config"].get("eval") or {})
    if isinstance(meta.get("test_input"), dict):
        section["input"] = meta["test_input"]
    cfg = load_eval_config(section, list(overrides))
    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    encoder = ckpt.load_encoder(path, map_location=dev).eval()
    return Embedder(encoder, cfg.input, cfg.knn.batch_size, _training_data(meta), path, dev)


def store_indices(store: Store, protocol: str | None, split: str) -> np.ndarray:
    """The store indices ``skelssl eval`` uses for ``split`` of ``protocol`` (all samples without one).

    ``all`` with a protocol is its training then its test split, in that order.
    """
    from skelssl.data.protocols import split as protocol_split

    if split not in SPLITS:
        raise ConfigError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    if protocol is None:
        if split != "all":
            raise ConfigError(f"--split {split} needs a --protocol (whose {split} split to embed)")
        return np.arange(len(store), dtype=np.int64)
    try:
        train, test = protocol_split(store, protocol)
    except (KeyError, ValueError) as e:
        raise ConfigError(str(e.args[0] if e.args else e)) from None
    return {"train": train, "test": test, "all": np.concatenate([train, test])}[split].astype(np.int64)
