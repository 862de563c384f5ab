"""What a command runs, built on the engine's machinery: pre-training, evaluation, embedding, demo,
bench and the conversion of official checkpoints.

- :mod:`~skelssl.jobs.pretrain`: ``skelssl pretrain`` (open the store, build the method, fit, export).
- :mod:`~skelssl.jobs.evaluate`: ``skelssl eval`` (resolves the arguments into an
  :class:`~skelssl.jobs.eval_context.EvalContext`, dispatches, writes the results); one module per
  kind of protocol: :mod:`~skelssl.jobs.evaluate_frozen` (knn, linear, their baselines),
  :mod:`~skelssl.jobs.evaluate_classifier` (finetune, semi), :mod:`~skelssl.jobs.evaluate_tsne`,
  :mod:`~skelssl.jobs.evaluate_detect`, :mod:`~skelssl.jobs.evaluate_predict`.
- :mod:`~skelssl.jobs.embed`: ``skelssl embed`` and :func:`skelssl.load_encoder`.
- :mod:`~skelssl.jobs.demo`, :mod:`~skelssl.jobs.bench`: ``skelssl demo``, ``skelssl bench``.
- :mod:`~skelssl.jobs.official`: ``skelssl convert`` and ``skelssl export-weights``.

Jobs sit above :mod:`skelssl.viz` (they draw their figures) and below :mod:`skelssl.cli`.
"""
