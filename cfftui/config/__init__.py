"""experiments.toml: studies as data, validated completely before anything runs."""
