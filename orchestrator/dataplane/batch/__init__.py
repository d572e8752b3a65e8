"""Batch mode: anonymize image files, folders and recorded videos."""
