"""Subcommands of the `zoomin` command line, one module each (see zoomin.cli.main)."""
