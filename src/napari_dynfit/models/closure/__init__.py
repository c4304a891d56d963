"""Learned closures of the kinetic theory of active suspensions (Maddu, Weady & Shelley, arXiv:2308.06675).

Modules: :mod:`.spectral` (periodic operators), :mod:`.moments` (moments, Bingham closure),
:mod:`.kinetic` (kinetic simulator), :mod:`.moment_model` (the ``c, D, u`` model with a pluggable closure).
Needs torch (the ``[learn]`` extra).
"""
