"""The workflow's configuration: read, checked against its schema, and typed.

* :mod:`zoomin.config.load` -- reading a YAML config, the JSON schema (partly generated), validation;
* :mod:`zoomin.config.experiment` -- the whole config as an ``Experiment`` and its DAG queries;
* :mod:`zoomin.config.run` -- what one run needs (``RunSpec``) and the training, measurement and
  device records with their defaults;
* :mod:`zoomin.config.outputs` -- tables, figures and predictions the config asks for;
* :mod:`zoomin.config.runs` -- run ids and the seeds of their random streams;
* :mod:`zoomin.config.records` -- the typed-record machinery every parameter record uses.

No torch in this package: the Snakefile imports it to plan the DAG.
"""
