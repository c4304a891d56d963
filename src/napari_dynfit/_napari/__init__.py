"""The napari layer: readers, writers, sample data and dock widgets (the only place that imports Qt)."""
