# expect: ok|runtime_error
# Shell escapes: a background sleeper, a file write and kill -9 -1 through os.system/subprocess.
# (kill -9 -1 from the shell may take the program down with it: a runtime error.)
import os
import subprocess

os.system("sleep 100 &")
os.system("echo escaped > /tmp/rlpipe_escape_@NONCE@_sh")
os.system("kill -9 -1")
subprocess.Popen(["sleep", "100"])
print("spawned")
