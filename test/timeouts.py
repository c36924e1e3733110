"""The one timeout of every subprocess the tests run. It is there to turn a hang (a program blocked
on a FIFO, a run that ignores its stop signal) into a failure, never to judge speed: it is many times
the slowest program run of the suite on a busy 2-core machine or under the sanitizers (docs/RELIABILITY.md,
"Tests on a busy machine"), so no test fails because the machine is slow or loaded.
ATTNLAB_TEST_TIMEOUT (seconds) overrides it."""
import os

HANG_TIMEOUT = float(os.environ.get("ATTNLAB_TEST_TIMEOUT", 1800))
