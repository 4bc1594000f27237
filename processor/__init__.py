"""The reference video processor: `python -m processor` in the processing container (docs/processor-image.md).

It reads only the container contract (environment variables, docs/processor.md) and is its own image: it never
imports `generator`; the constants it shares with the pipeline are copied in `contract.py`, and a test keeps them
equal.
"""
