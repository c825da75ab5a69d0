# expect: runtime_error|memory
# Starts threads without end: the process limit (or address space) stops it.
import threading
import time

while True:
    threading.Thread(target=time.sleep, args=(100,), daemon=True).start()
