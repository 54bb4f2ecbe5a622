# cmake -DINPUT=file -DOUTPUT=file.cc -DSYMBOL=name -P embed_file.cmake
# Writes a C++ source defining `extern const char* const SYMBOL` with INPUT's bytes, as a raw
# string literal split into chunks (every compiler accepts long concatenations of short ones).
file(READ "${INPUT}" content HEX)
string(LENGTH "${content}" n)
set(out "// Generated from ${INPUT} by cmake/embed_file.cmake. Do not edit.\n")
string(APPEND out "extern const char* const ${SYMBOL};\nconst char* const ${SYMBOL} =\n")
set(i 0)
while(i LESS n)
  string(SUBSTRING "${content}" ${i} 160 chunk)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "\\\\x\\1" chunk "${chunk}")
  string(APPEND out "    \"${chunk}\"\n")
  math(EXPR i "${i} + 160")
endwhile()
string(APPEND out "    \"\";\n")
file(WRITE "${OUTPUT}" "${out}")
