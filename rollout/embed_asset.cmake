# embed_asset.cmake: turns a text file into a C string constant (the report page's script and
# style live as plain .js/.css files next to the code and are compiled into the binary).
#   cmake -DIN=file.js -DOUT=file.c -DNAME=SYMBOL -P embed_asset.cmake
file(READ "${IN}" hex HEX)
string(REGEX REPLACE "(..)" "0x\\1," bytes "${hex}")
file(WRITE "${OUT}" "// Generated from ${IN} by embed_asset.cmake; do not edit.\nconst char ${NAME}[] = {${bytes}0x00};\n")
