"""What bare RQ runs in the benchmarks: functions that import nothing of the project (its workers run
without Django, as RQ is used elsewhere)."""
import time


def noop(x: int) -> int:
    return x + 1


def sleep(ms: int) -> int:
    time.sleep(ms / 1000)
    return ms


def burn(ms: int) -> int:
    end = time.process_time() + ms / 1000
    while time.process_time() < end:
        pass
    return ms
