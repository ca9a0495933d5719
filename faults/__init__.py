"""The fault-injection suite: real servers, real faults, exact counts.

Run with ``nox -s faults`` (CI runs it) or ``pytest faults``. Each scenario
prints one line of figures (operations attempted, acknowledged, failed, lost,
duplicated, partial batches) in pytest's terminal summary and asserts that
nothing acknowledged was lost, nothing was stored twice and no batch was
stored in part.
"""
