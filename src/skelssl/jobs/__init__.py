"""What a command runs, built on the engine's machinery: pre-training, evaluation, embedding, demo,
bench and the conversion of official checkpoints.

- :mod:`~skelssl.jobs.pretrain`: ``skelssl pretrain`` (open the store, build the method, fit, export).
- :mod:`~skelssl.jobs.evaluate`: ``skelssl eval`` (encoder loading, the protocol runners, results);
  :mod:`~skelssl.jobs.evaluate_frozen`, :mod:`~skelssl.jobs.evaluate_detect` and
  :mod:`~skelssl.jobs.evaluate_predict` hold the frozen-feature figures, detection and prediction.
- :mod:`~skelssl.jobs.embed`: ``skelssl embed`` and :func:`skelssl.load_encoder`.
- :mod:`~skelssl.jobs.demo`, :mod:`~skelssl.jobs.bench`: ``skelssl demo``, ``skelssl bench``.
- :mod:`~skelssl.jobs.official`: ``skelssl convert`` and ``skelssl export-weights``.

Jobs sit above :mod:`skelssl.viz` (they draw their figures) and below :mod:`skelssl.cli`.
"""
