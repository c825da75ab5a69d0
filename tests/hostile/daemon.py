# expect: ok
# Double fork + setsid: a daemon that outlives the program, sleeps, then writes files. It must be
# killed with the rest of the tree (the test waits past its sleep and checks).
import os
import time

pid = os.fork()
if pid == 0:
    try:
        os.setsid()
    except OSError:
        pass
    if os.fork() == 0:
        time.sleep(0.4)
        for path in ("/tmp/rlpipe_escape_@NONCE@_daemon", "@REPO@/rlpipe_escape_@NONCE@_daemon"):
            try:
                open(path, "w").write("daemon survived\n")
            except OSError:
                pass
        time.sleep(100)
    os._exit(0)
os.waitpid(pid, 0)
print("parent done")
