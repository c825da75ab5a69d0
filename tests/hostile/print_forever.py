# expect: output_limit
# Floods stdout: the parent stops reading at the cap and kills the tree.
line = "y" * 1000
while True:
    print(line)
