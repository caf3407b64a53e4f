"""A backend with a bug: raises an ordinary (non-spikec) exception, for the CLI's exit status 3."""

NAME = "crashing"


def is_available():
    return True


def why_unavailable():
    return ""


def run(graph, inputs, steps, record=False, record_v=False):
    return {}["no such key"]
