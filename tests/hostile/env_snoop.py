# expect: ok
# Prints its environment: it must hold only the sandbox's few variables, not the runner's.
import os

print(os.environ.get("RLPIPE_TEST_SECRET", "no secret"))
print("keys:", ",".join(sorted(os.environ)))
