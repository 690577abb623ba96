"""boir_core.engine.training: one training run, from config to ``final.pt``.

- :mod:`.job`: :func:`~.job.build_job` builds what a run steps with (loader, network, optimiser, precision, the
  run plan); :meth:`~.job.TrainingJob.step` is the one training step
- :mod:`.train`: :func:`~.train.train`, the loop (epochs, logging, checkpoints, resume, DDP)
- its parts: :mod:`.budget` (the run's length, decided once), :mod:`.optimization`, :mod:`.precision` (AMP),
  :mod:`.schedule` (warm-up + cosine), :mod:`.seeding`, :mod:`.effective_batch`, :mod:`.checkpointing` (the
  training state), :mod:`.resume_check`, :mod:`.runlock`, :mod:`.metrics_log`; :mod:`.convert` upgrades an old
  training state (``boir convert-checkpoint``)

Imports nothing from inference or evaluation. Submodules are imported on use.
"""
