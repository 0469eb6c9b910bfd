"""Training and evaluating one run.

* :mod:`zoomin.training.loop` -- one training run, top to bottom (checkpointed every epoch);
* :mod:`zoomin.training.losses` -- cross-entropy, entropy regulariser, contrastive loss, mask MSE;
* :mod:`zoomin.training.pretrain` -- appendix L: the attention and feature nets as tile classifiers;
* :mod:`zoomin.training.evaluate` -- test metrics and inference cost of a trained run;
* :mod:`zoomin.training.inference` -- class probabilities of a model over images, seeded;
* :mod:`zoomin.training.checkpoints` -- saving, resuming and loading trained models;
* :mod:`zoomin.training.device` -- choosing the compute device.
"""
