"""The CFF science: model, margin losses, data, augmentation, trainer, worker (the only home of torch)."""
