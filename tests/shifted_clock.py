"""`python tests/shifted_clock.py SECONDS <manage.py arguments>`: a manage.py command on a host whose clock
is SECONDS off (negative: behind). Every clock the process reads moves, the forked work horses' too; the
database's and Redis's clocks do not, as on a real host with a skewed clock."""
import datetime
import runpy
import sys
from pathlib import Path

import time_machine

shift = datetime.timedelta(seconds=float(sys.argv[1]))
time_machine.travel(datetime.datetime.now(datetime.UTC) + shift, tick=True).start()
sys.argv = sys.argv[2:]  # manage.py and its arguments
sys.path[0] = str(Path(__file__).resolve().parent.parent)  # the project, as for `python manage.py`
runpy.run_path("manage.py", run_name="__main__")
