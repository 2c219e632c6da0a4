"""Stages ingest, preprocess and split: crops from a source -> one archive -> arrays -> train/val/test."""
