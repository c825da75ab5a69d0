# expect: timeout
# Closes stdout (the parent sees EOF early) and keeps running.
import os

os.close(1)
os.close(2)
while True:
    pass
