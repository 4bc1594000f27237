"""What the environments cost (`python -m generator cost`, and the cost line of `python -m generator diff`).

    prices.json / prices.py   the dated price snapshot, and its refresh from the AWS Price List bulk files
    job_calls.json / calls.py job control's AWS calls per invocation, recorded in tests/test_cost_calls.py
    model.py                  estimate(): fixed monthly and per-video lines from one environment's templates
    render.py                 text, JSON, and cost_section(): the docs' generated cost block
    review.py                 the cost of a template change, per environment, for the review diff
    cli.py                    the command
"""
