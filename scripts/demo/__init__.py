"""The building blocks of ``bash scripts/demo.sh`` (scripts/demo.py): runtime, vendor sandboxes, the Airflow
API server, finance's local receivers, the customers' side of the story, and the figures it prints."""
