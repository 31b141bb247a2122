"""The CFF science: model, margin losses, datasets, on-device augmentation, trainer and worker (torch lives here only)."""
