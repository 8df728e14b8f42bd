"""Reduced student (Thomine et al., VISAPP 2023, §3)."""
