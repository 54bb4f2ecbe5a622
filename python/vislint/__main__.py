"""`python -m vislint` runs the bundled C++ command line (the `vislint` script)."""
import os
import shutil
import sys


def main() -> int:
    exe = shutil.which("vislint", path=os.path.dirname(sys.executable)) or shutil.which("vislint")
    if exe is None:
        print("vislint: the vislint command is not installed next to this Python", file=sys.stderr)
        return 2
    os.execv(exe, [exe, *sys.argv[1:]])
    return 0


if __name__ == "__main__":
    sys.exit(main())
