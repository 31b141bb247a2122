"""The variance analysis of finished runs with Polars and SciPy, and its exports."""
