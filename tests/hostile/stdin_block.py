# expect: runtime_error
# Reads stdin to the end and then once more: stdin is an in-memory file, so it never blocks and
# the second input() raises EOFError.
import sys

sys.stdin.read()
input()
