"""experiments.toml: studies as data, validated completely before anything runs."""

from __future__ import annotations

from cfftui.config.study import (
    Analysis,
    Execution,
    Experiment,
    Factor,
    Level,
    Study,
    StudyError,
    default_study_text,
    level_label,
    load_study,
    parse_value,
)

__all__ = ["Analysis", "Execution", "Experiment", "Factor", "Level", "Study", "StudyError",
           "default_study_text", "level_label", "load_study", "parse_value"]
