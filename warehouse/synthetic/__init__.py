"""Synthetic OMOP CDM v5.4 warehouses with their own vocabulary subset, for trying Soyang without any download."""
