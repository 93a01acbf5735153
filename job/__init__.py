"""kubetl's ETL runtime: the program inside every ETL container."""

__version__ = "0.1.0"
