# expect: timeout|runtime_error
# Forks without end, ignoring failures: RLIMIT_NPROC caps the tree, the deadline kills it all.
import os

while True:
    try:
        os.fork()
    except OSError:
        pass
