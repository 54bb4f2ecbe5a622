#!/usr/bin/env bash
# Idempotent: one venv per peer under build/peers/ (git-ignored). Prints one line per peer.
# No torch anywhere: imagededup is installed --no-deps (hashing only; its CNN needs
# torchvision + hub weights). fastdup ships its ONNX model inside the wheel.
set -u
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
VENVS="$ROOT/build/peers"
PY="${PYTHON:-python3}"
export PIP_DISABLE_PIP_VERSION_CHECK=1
mkdir -p "$VENVS"

FASTDUP_VER=2.54
IMAGEDEDUP_VER=0.3.3.post2
CLEANVISION_VER=0.3.7
CLEANLAB_VER=2.9.0
# cleanlab's requirements that matter for results, pinned to what pip resolved (Python 3.11)
CLEANLAB_DEPS="scikit-learn==1.9.1 pandas==3.1.1 numpy==2.4.6"
# imagededup's non-torch requirements, pinned to what was tested
IMAGEDEDUP_DEPS="numpy==2.4.6 Pillow==13.0.0 PyWavelets==1.9.0 scikit-learn==1.9.1 scipy==1.17.1 tqdm==4.70.1 matplotlib==3.11.2"

install() {  # name, import-check python, pip args...
  local name="$1" check="$2"; shift 2
  local venv="$VENVS/$name-venv" log="$VENVS/$name-install.log"
  [ -x "$venv/bin/python" ] || "$PY" -m venv "$venv" >"$log" 2>&1
  if ! "$venv/bin/python" -c "$check" >/dev/null 2>&1; then
    local ok=1
    while [ $# -gt 0 ]; do  # groups separated by '--next--'
      local args=()
      while [ $# -gt 0 ] && [ "$1" != "--next--" ]; do args+=("$1"); shift; done
      [ $# -gt 0 ] && shift
      "$venv/bin/pip" install -q "${args[@]}" >>"$log" 2>&1 || { ok=0; break; }
    done
    [ $ok = 1 ] || { echo "$name: FAILED pip install (see $log): $(grep -m1 -i error "$log")"; return; }
  fi
  local v
  if v=$(SENTRY_OPT_OUT=1 "$venv/bin/python" -c "$check" 2>&1); then
    echo "$name: $v ($venv)"
  else
    echo "$name: FAILED import: $(echo "$v" | tail -n1)"
  fi
}

install fastdup "import fastdup; print(fastdup.__version__)" "fastdup==$FASTDUP_VER"
install imagededup \
  "import importlib.util,os,sys,types; r=os.path.dirname(importlib.util.find_spec('imagededup').origin)
for s in ('methods','utils'):
    m=types.ModuleType('imagededup.'+s); m.__path__=[os.path.join(r,s)]; sys.modules['imagededup.'+s]=m
import imagededup; from imagededup.methods.hashing import PHash; print(imagededup.__version__, '(hashing only, no torch)')" \
  --no-deps "imagededup==$IMAGEDEDUP_VER" --next-- $IMAGEDEDUP_DEPS
install cleanvision "import cleanvision; print(cleanvision.__version__)" "cleanvision==$CLEANVISION_VER"
install cleanlab "import cleanlab, sklearn; print(cleanlab.__version__, '(sklearn', sklearn.__version__ + ')')" \
  "cleanlab==$CLEANLAB_VER" $CLEANLAB_DEPS
