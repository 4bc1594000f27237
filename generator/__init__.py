"""Generates the video pipeline's CloudFormation templates: python -m generator (see README.md)."""
