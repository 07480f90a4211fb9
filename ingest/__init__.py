"""Ingestion of an insurer's documents into the knowledge store."""
