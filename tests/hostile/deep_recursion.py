# expect: runtime_error|memory|timeout
# Unbounded recursion with the recursion limit lifted: a crash, MemoryError or (it is slow to fill
# memory) the deadline, all contained.
import sys

sys.setrecursionlimit(10**9)

def down(n):
    return down(n + 1) + 1

down(0)
