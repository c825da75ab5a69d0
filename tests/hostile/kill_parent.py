# expect: ok
# Tries to kill its parent, every process it can reach (kill -1), the test runner's process
# group and pid 1. The test runner must survive.
import os
import signal

for target in (os.getppid(), -1, 1, -os.getppid(), @RUNNER@, -@RUNNER@):
    try:
        os.kill(target, signal.SIGKILL)
        print("sent", target)
    except OSError as e:
        print("refused", target, e.errno)
print("still here")
