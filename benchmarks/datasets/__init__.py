"""Converters from public recommendation data sets to kgrec's bring-your-own format (docs/data-format.md)."""
