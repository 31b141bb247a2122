"""Runs a plan: the run store, the scheduler, executors and the detached supervisor."""
