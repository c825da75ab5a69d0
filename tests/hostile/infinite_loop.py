# expect: timeout
# A CPU-bound loop: the wall-clock deadline (and RLIMIT_CPU) must end it.
while True:
    pass
