"""Turning arrays into bytes the browser decodes (PNG); nothing else."""
