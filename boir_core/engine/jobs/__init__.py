"""boir_core.engine.jobs: the command line's jobs built on training, inference and evaluation.

- :mod:`.demo`: ``boir demo`` (SynthCrowd, a short training, evaluation, predictions, the notebooks)
- :mod:`.dryrun`: ``boir train --dry-run`` (the training job built once, its steps timed, the plan reported)
- :mod:`.ship_demo`: ``boir ship-demo`` (train and evaluate the shipped demo weights, then export them)
- :mod:`.doctor`: ``boir doctor`` (what this machine and checkout can run)

Nothing below imports these. Submodules are imported on use.
"""
