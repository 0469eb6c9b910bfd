"""Entry points: the ``zoomin`` command line (:mod:`zoomin.cli.main`, one module per subcommand in
:mod:`zoomin.cli.commands`) and the glue of the workflow's script adapters
(:mod:`zoomin.cli.workflow_support`)."""
