# expect: timeout
# Uses no CPU at all: only the wall-clock deadline can end it.
import time

time.sleep(1e9)
