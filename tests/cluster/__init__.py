"""The workflow on a real single-node SLURM cluster (installed only on opt-in, see docs/cluster.md)."""
