"""Tests of zoomin (a package, so helpers are imported as tests.<module>)."""
