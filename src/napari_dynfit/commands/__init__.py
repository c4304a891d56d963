"""CLI subcommands, one module per area (see :mod:`napari_dynfit.cli`).

Each module defines ``register(subparsers)``. A module may also contribute a stage to
``dynfit demo`` by defining ``DEMO_STAGE = (order, title, function)`` where
``function(ctx: napari_dynfit.report.DemoContext) -> None`` runs the stage on the embedded sample
and adds its results to ``ctx.report``; stages run in increasing ``order``
(10 simulate, 20 APR, 30 filter/segment, 40 detect, 50 track, 60 fields, 70 PDE, 80 balance,
90 latent field, 95 flow inference).
"""
