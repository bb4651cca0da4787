"""What bare RQ runs in the benchmarks: a function that imports nothing of the project (its workers run
without Django, as RQ is used elsewhere)."""


def noop(x: int) -> int:
    return x + 1
