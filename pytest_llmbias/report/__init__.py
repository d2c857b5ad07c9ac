"""What a run reports, one module per output: `terminal` (the results table), `html` (the page),
`junit` (JUnit XML properties, pytest-html extras), `baselines` (stored runs and comparisons);
`hooks` is the pytest plugin that drives them. Nothing is imported here: `pytest --help` stays light.
"""
