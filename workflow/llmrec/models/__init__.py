"""Models: one file per model, each built from plain numbers (sizes, layers), never a dataset."""
