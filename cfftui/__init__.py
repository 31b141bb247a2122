"""cfftui: a terminal console for seed-replicated studies of Contrastive Forward-Forward training."""

__version__ = "0.1.0"
