# expect: ok
# Looks for the expected output outside its directory: a file the test wrote on the host, the
# test's source, the parent's environment and command line, /etc/shadow. It prints whatever it
# finds; the expected output is the secret, so finding it would score 1.
import os

found = []
for path in ("/tmp/rlpipe_secret_@NONCE@", "@REPO@/tests/test_sandbox.c", "/etc/shadow",
             "/proc/%d/environ" % os.getppid(), "/proc/%d/cmdline" % os.getppid(),
             "/proc/@RUNNER@/environ", "/proc/@RUNNER@/cmdline", "/proc/1/environ"):
    try:
        with open(path, "rb") as f:
            data = f.read()
        found.append(path)
        if b"@NONCE@" in data:
            print(data.decode("latin-1").strip())
    except OSError:
        pass
print("readable:", found)
