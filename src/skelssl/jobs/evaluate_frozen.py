"""The ``knn`` and ``linear`` protocols, and the frozen-feature figures and baselines they carry.

Every frozen-feature result carries, from the same store, split and test-time input: kNN and the
robust linear probe of the encoder's features, their diagnostics (effective rank, mean pairwise
cosine, per-dimension std), the same two figures on the raw input and on the random-init encoder,
and, where the store records test samples identical to a training sample, every figure again on the
test samples that are not copies.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections import OrderedDict
from typing import Any, Callable

import numpy as np
import torch

from skelssl.engine.eval_config import EvalConfig
from skelssl.engine.eval_input import test_transform
from skelssl.evaluation.baselines import accuracy, not_copies_mask, raw_frames_for, raw_input_features
from skelssl.evaluation.diagnostics import feature_diagnostics
from skelssl.evaluation.features import extract_features
from skelssl.evaluation.knn import knn_accuracy, knn_predict
from skelssl.evaluation.probe import robust_probe
from skelssl.jobs.eval_context import EvalContext
from skelssl.jobs.evaluate_classifier import save_logits, train_classifier

__all__ = ["run_knn", "run_linear", "frozen_figures", "encoder_features", "baselines", "copies_of"]

# Baseline figures depend only on the store, the split, the input settings and (random init) the
# architecture and seed: computed once per process (``knn`` and ``linear`` both carry them, and the
# demo evaluates several methods on one store).
_CACHE: dict[str, tuple[dict[str, Any], Any]] = {}  # baseline figures and their fitted robust probe


class _Recent:
    """The last ``size`` values computed, by key (least recently used dropped first)."""

    def __init__(self, size: int) -> None:
        self.size, self.items = size, OrderedDict()

    def get(self, key: str, compute: Callable[[], Any]) -> Any:
        if key not in self.items:
            self.items[key] = compute()
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        self.items.move_to_end(key)
        return self.items[key]


# The features of the last few encoders evaluated (``knn`` then ``linear`` on one encoder extract them
# once), and the frozen figures of the last few feature sets (with the fitted probe, whose test
# log-probabilities grow with the test split): few, because a process that evaluates many checkpoints
# (benchmarks/curve.py) would otherwise hold every one.
_FEATURES = _Recent(2)
_FIGURES = _Recent(8)


def _weights_digest(encoder: torch.nn.Module) -> str:
    """What the encoder computes: its class and the bytes of every parameter and buffer."""
    h = hashlib.sha256(type(encoder).__qualname__.encode())
    for name, t in sorted(encoder.state_dict().items()):
        h.update(name.encode())
        h.update(repr((t.dtype, tuple(t.shape))).encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def encoder_features(ctx: EvalContext, encoder: torch.nn.Module) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(train_f, train_y, test_f, test_y)`` of a frozen encoder on the protocol's splits (test-time input),
    kept for the next call with the same weights, store, splits and input (each call gets its own copies)."""
    key = _key(ctx, "features", _weights_digest(encoder), str(ctx.device), repr(ctx.cfg.knn.batch_size))
    train_f, train_y, test_f, test_y = _FEATURES.get(key, lambda: _extract(ctx, encoder))
    return train_f.copy(), train_y.copy(), test_f.copy(), test_y.copy()


def _extract(ctx: EvalContext, encoder: torch.nn.Module) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    cfg = ctx.cfg
    encoder = encoder.to(ctx.device).eval()
    kw = dict(batch_size=cfg.knn.batch_size, device=ctx.device, batch_transform=test_transform(cfg.input),
              num_workers=cfg.num_workers, progress=ctx.progress)
    train_f, train_y = extract_features(encoder, ctx.train_set, **kw)
    test_f, test_y = extract_features(encoder, ctx.test_set, **kw)
    return train_f.numpy(), train_y.numpy(), test_f.numpy(), test_y.numpy()


def frozen_figures(cfg: EvalConfig, train_f: np.ndarray, train_y: np.ndarray, test_f: np.ndarray, test_y: np.ndarray,
                   copies_mask: np.ndarray | None, diagnostics: bool = True, keep: dict[str, Any] | None = None) -> dict[str, Any]:
    """kNN (the first ``knn.ks``, cosine) and the robust probe of one feature set, with diagnostics.

    ``keep``, when given, receives the fitted probe's :class:`~skelssl.evaluation.probe.ProbeResult`
    under ``"probe"`` (its test log-probabilities, for ``--save-logits``). The figures are deterministic
    functions of their arguments and are kept for the process: ``knn`` then ``linear`` on one encoder (as
    the demo runs them) fit the probe once."""
    h = hashlib.sha256()
    for a in (train_f, train_y, test_f, test_y, copies_mask if copies_mask is not None else np.zeros(0)):
        h.update(repr((a.dtype, a.shape)).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    h.update(repr((cfg.knn, cfg.probe, diagnostics)).encode())
    def compute() -> dict[str, Any]:
        kept: dict[str, Any] = {}
        figures = _frozen_figures(cfg, train_f, train_y, test_f, test_y, copies_mask, diagnostics, kept)
        return {"figures": figures, "probe": kept["probe"]}

    entry = _FIGURES.get(h.hexdigest(), compute)
    if keep is not None:
        keep["probe"] = entry["probe"]
    return copy.deepcopy(entry["figures"])


def _frozen_figures(cfg: EvalConfig, train_f: np.ndarray, train_y: np.ndarray, test_f: np.ndarray, test_y: np.ndarray,
                    copies_mask: np.ndarray | None, diagnostics: bool, keep: dict[str, Any]) -> dict[str, Any]:
    k = cfg.knn.ks[0]
    knn_pred = knn_predict(train_f, train_y, test_f, k=k, metric="cosine",
                           weighting="uniform" if k == 1 else cfg.knn.weighting, temperature=cfg.knn.temperature).numpy()
    probe = robust_probe(train_f, train_y, test_f, test_y, cs=cfg.probe.cs, folds=cfg.probe.folds,
                         seed=cfg.probe.seed, max_iter=cfg.probe.max_iter)
    keep["probe"] = probe
    out: dict[str, Any] = {
        "knn_top1": accuracy(knn_pred, test_y),
        "probe_top1": probe.top1,
        "probe": {"C": probe.c, "folds": probe.folds, "cv_top1": probe.cv},
    }
    if copies_mask is not None:
        out["not_copies"] = {
            "test_samples": int(copies_mask.sum()),
            "knn_top1": accuracy(knn_pred, test_y, copies_mask),
            "probe_top1": accuracy(probe.predictions, test_y, copies_mask),
        }
    if diagnostics:
        out["diagnostics"] = feature_diagnostics(train_f)
    return out


def _key(ctx: EvalContext, *parts: str) -> str:
    """What a baseline figure depends on: store (and its input stream), split, input, kNN and probe settings,
    and ``parts``."""
    cfg = ctx.cfg
    h = hashlib.sha256()
    for part in (str(ctx.store.path), str(ctx.store.info.get("checksum")), ctx.store.stream, repr(cfg.input),
                 repr(cfg.knn), repr(cfg.probe), *parts):
        h.update(part.encode())
    h.update(np.asarray(ctx.train_idx, np.int64).tobytes())
    h.update(np.asarray(ctx.test_idx, np.int64).tobytes())
    return h.hexdigest()


def baselines(ctx: EvalContext, copies_mask: np.ndarray | None, probes: dict[str, Any] | None = None) -> dict[str, Any]:
    """The raw-input and random-init figures for this protocol (as ``cfg.baselines`` asks); ``probes``,
    when given, receives each baseline's fitted robust probe by name (their test log-probabilities go
    into ``--save-logits``, so that an ensemble stands beside the ensemble of its members' baselines)."""
    cfg = ctx.cfg
    out: dict[str, Any] = {}
    if cfg.baselines.raw_input:
        frames = raw_frames_for(ctx.store, cfg.input.frames, cfg.baselines.raw_max_dim)
        key = _key(ctx, "raw", str(frames))
        if key not in _CACHE:
            kw = dict(centre=cfg.input.test_centre, min_frames=cfg.input.min_frames,
                      batch_transform=test_transform(cfg.input), num_workers=cfg.num_workers)
            train_f, train_y = raw_input_features(ctx.train_set, frames, **kw)
            test_f, test_y = raw_input_features(ctx.test_set, frames, **kw)
            kept: dict[str, Any] = {}
            fig = frozen_figures(cfg, train_f, train_y, test_f, test_y, copies_mask, keep=kept)
            _CACHE[key] = ({"frames": frames, "dim": int(train_f.shape[1]), **fig}, kept["probe"])
        out["raw_input"], probe = _CACHE[key]
        if probes is not None:
            probes["raw_input"] = probe
    if cfg.baselines.random_init and not ctx.random_init:
        seed, overrides = ctx.seed, ctx.task_encoder
        key = _key(ctx, "random", json.dumps(ctx.source.spec, sort_keys=True, default=str), str(seed),
                   json.dumps(overrides or {}, sort_keys=True, default=str))
        if key not in _CACHE:
            encoder, _ = ctx.source.build(ctx.store, True, seed=seed, overrides=overrides)
            kept = {}
            _CACHE[key] = (frozen_figures(cfg, *encoder_features(ctx, encoder), copies_mask, keep=kept), kept["probe"])
        out["random_init"], probe = _CACHE[key]
        if probes is not None:
            probes["random_init"] = probe
    return copy.deepcopy(out)


def copies_of(ctx: EvalContext) -> np.ndarray | None:
    """The not-a-copy mask of the protocol's test samples (``None``: no copies, or not recorded)."""
    return not_copies_mask(ctx.store, ctx.train_idx, ctx.test_idx)


# -- the protocols ------------------------------------------------------------------------------------------
def run_knn(ctx: EvalContext) -> dict[str, Any]:
    """The ``knn`` protocol: kNN accuracy at every ``knn.ks``, beside the frozen figures and baselines."""
    cfg = ctx.cfg
    train_f, train_y, test_f, test_y = encoder_features(ctx, ctx.encoder)
    copies = copies_of(ctx)
    figures = frozen_figures(cfg, train_f, train_y, test_f, test_y, copies)
    k0 = cfg.knn.ks[0]
    per_k = {f"k{k0}": figures["knn_top1"]}  # the headline k, as frozen_figures measured it
    for k in cfg.knn.ks[1:]:
        weighting = "uniform" if k == 1 else cfg.knn.weighting
        per_k[f"k{k}"] = knn_accuracy(train_f, train_y, test_f, test_y, k=k, metric="cosine", weighting=weighting, temperature=cfg.knn.temperature)
    return {"metric": f"top1 (k={k0}, cosine)", "final": per_k[f"k{k0}"], "best": None, "per_k": per_k,
            "feature_dim": int(train_f.shape[1]), **_frozen_fields(ctx, figures, copies)}


def _frozen_fields(ctx: EvalContext, figures: dict[str, Any], copies: np.ndarray | None,
                   probes: dict[str, Any] | None = None) -> dict[str, Any]:
    """``frozen`` (kNN and robust probe of these features), ``diagnostics`` and ``baselines``."""
    figures = dict(figures)
    diagnostics = figures.pop("diagnostics", None)
    return {"frozen": figures, "diagnostics": diagnostics, "baselines": baselines(ctx, copies, probes)}


def run_linear(ctx: EvalContext) -> dict[str, Any]:
    """The robust probe (default) or the preset's SGD protocol, with the robust probe beside it."""
    cfg = ctx.cfg
    train_f, train_y, test_f, test_y = encoder_features(ctx, ctx.encoder)
    copies = copies_of(ctx)
    kept: dict[str, Any] = {}
    figures = frozen_figures(cfg, train_f, train_y, test_f, test_y, copies, keep=kept)
    if cfg.linear.probe == "robust":
        probes: dict[str, Any] = {}
        fields = _frozen_fields(ctx, figures, copies, probes)
        r = {"metric": "top1", "final": figures["probe_top1"], "best": None}
        if ctx.save_logits:  # the baselines' log-probabilities beside ours, for an ensemble's baselines
            r["logits"] = save_logits(ctx, ctx.out, kept["probe"].test_logits(ctx.num_classes), test_y, "log_proba",
                                      baselines={k: p.test_logits(ctx.num_classes) for k, p in probes.items()})
    else:  # the SGD head, then the baselines (the order they always ran in)
        r = train_classifier(ctx, cfg.linear, freeze=True, out_dir=ctx.out, train_set=ctx.train_set)
        fields = _frozen_fields(ctx, figures, copies)
    return {**r, "probe": cfg.linear.probe, "feature_dim": int(train_f.shape[1]), **fields}
